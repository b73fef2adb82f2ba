//! A tiny HCL2 writer: templates are built as data and printed, never assembled from strings.
//!
//! Every literal goes through [`quote`], so a value containing `"`, `\`, `${`, `%{` or a newline
//! cannot change the template's structure: it stays one string. Interpolations exist only as
//! [`Part::Interp`] over an [`Expr`], whose references are built from checked identifiers. The
//! output is what `packer fmt` would print (aligned `=` in runs of single-line attributes, two-space
//! indent), so `packer fmt -check` on a rendered template is a test of the writer.

use std::fmt::Write as _;

/// An HCL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A string literal; escaped on output.
    Str(String),
    /// A string template mixing literal text and interpolated expressions.
    Template(Vec<Part>),
    Int(i64),
    Bool(bool),
    /// A traversal such as `var.iso_url` or `local.vm_name` (identifiers checked by [`Expr::ref_`]).
    Ref(Vec<String>),
    /// A function call, e.g. `contains(["kvm", "tcg"], var.accelerator)`.
    Call(String, Vec<Expr>),
    /// A binary operation `lhs op rhs` (`op` from a fixed set: see [`BinOp`]).
    Bin(Box<Expr>, BinOp, Box<Expr>),
    List(Vec<Expr>),
    /// A type keyword in a `type =` attribute: `string`, `number`, `bool`, `list(string)`.
    Type(TypeExpr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Gt,
    Ge,
    Eq,
    And,
    Or,
}

impl BinOp {
    fn as_str(self) -> &'static str {
        match self {
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeExpr {
    String,
    Number,
    Bool,
    ListOfString,
}

impl TypeExpr {
    fn as_str(self) -> &'static str {
        match self {
            TypeExpr::String => "string",
            TypeExpr::Number => "number",
            TypeExpr::Bool => "bool",
            TypeExpr::ListOfString => "list(string)",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    Interp(Expr),
}

impl Expr {
    pub fn str(s: impl Into<String>) -> Expr {
        Expr::Str(s.into())
    }

    /// `a.b.c`; panics on a non-identifier segment, which is a programming error in cairn's own
    /// template code (user input never becomes a reference).
    pub fn ref_(path: &str) -> Expr {
        let segs: Vec<String> = path.split('.').map(str::to_owned).collect();
        for s in &segs {
            assert!(is_identifier(s), "not an HCL identifier: {s:?} in {path:?}");
        }
        Expr::Ref(segs)
    }

    pub fn var(name: &str) -> Expr {
        Expr::ref_(&format!("var.{name}"))
    }

    pub fn list_of_str<I, S>(items: I) -> Expr
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Expr::List(items.into_iter().map(|s| Expr::Str(s.into())).collect())
    }

    pub fn call(name: &str, args: Vec<Expr>) -> Expr {
        assert!(is_identifier(name), "not an HCL function name: {name:?}");
        Expr::Call(name.to_owned(), args)
    }

    pub fn bin(lhs: Expr, op: BinOp, rhs: Expr) -> Expr {
        Expr::Bin(Box::new(lhs), op, Box::new(rhs))
    }
}

/// An attribute or a block inside a body.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Attr(String, Expr),
    Block(Block),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Body(pub Vec<Item>);

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: String,
    pub labels: Vec<String>,
    pub body: Body,
}

impl Body {
    pub fn new() -> Body {
        Body(Vec::new())
    }

    /// Adds `name = value`; the name must be an identifier (cairn's own code picks it).
    pub fn attr(&mut self, name: &str, value: Expr) -> &mut Body {
        assert!(is_identifier(name), "not an HCL attribute name: {name:?}");
        self.0.push(Item::Attr(name.to_owned(), value));
        self
    }

    pub fn block(&mut self, block: Block) -> &mut Body {
        self.0.push(Item::Block(block));
        self
    }
}

impl Block {
    /// A block; labels are quoted on output so they may hold any text.
    pub fn new(kind: &str, labels: &[&str], body: Body) -> Block {
        assert!(is_identifier(kind), "not an HCL block type: {kind:?}");
        Block {
            kind: kind.to_owned(),
            labels: labels.iter().map(|s| (*s).to_owned()).collect(),
            body,
        }
    }
}

/// HCL identifiers: a letter or `_`, then letters, digits, `_` and `-`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Escapes `s` as the inside of an HCL quoted string (without the quotes).
///
/// `${` and `%{` start interpolations and directives in HCL templates; doubling the first
/// character is the language's escape for them. Control characters use `\n`, `\r`, `\t` or `\uXXXX`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` as a complete HCL string literal.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Str(s) => out.push_str(&quote(s)),
        Expr::Template(parts) => {
            out.push('"');
            for p in parts {
                match p {
                    Part::Lit(s) => out.push_str(&escape(s)),
                    Part::Interp(e) => {
                        out.push_str("${");
                        write_expr(out, e);
                        out.push('}');
                    }
                }
            }
            out.push('"');
        }
        Expr::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Expr::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Expr::Ref(segs) => out.push_str(&segs.join(".")),
        Expr::Call(name, args) => {
            out.push_str(name);
            write_list(out, ('(', ')'), args);
        }
        Expr::Bin(l, op, r) => {
            write_operand(out, l);
            out.push(' ');
            out.push_str(op.as_str());
            out.push(' ');
            write_operand(out, r);
        }
        Expr::List(items) => write_list(out, ('[', ']'), items),
        Expr::Type(t) => out.push_str(t.as_str()),
    }
}

/// `items` comma-separated between `open` and `close`: call arguments and list elements.
fn write_list(out: &mut String, (open, close): (char, char), items: &[Expr]) {
    out.push(open);
    for (i, a) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_expr(out, a);
    }
    out.push(close);
}

/// Nested binary operations are parenthesised so precedence never depends on the reader.
fn write_operand(out: &mut String, e: &Expr) {
    if matches!(e, Expr::Bin(..)) {
        out.push('(');
        write_expr(out, e);
        out.push(')');
    } else {
        write_expr(out, e);
    }
}

/// One expression as HCL text (used for `*.pkrvars.hcl` values too).
pub fn expr_to_string(e: &Expr) -> String {
    let mut s = String::new();
    write_expr(&mut s, e);
    s
}

fn write_body(out: &mut String, body: &Body, depth: usize) {
    let indent = "  ".repeat(depth);
    let items = &body.0;
    let mut i = 0;
    while i < items.len() {
        match &items[i] {
            Item::Attr(..) => {
                // A run of consecutive attributes shares one `=` column, as `packer fmt` aligns it.
                let start = i;
                while i < items.len() && matches!(items[i], Item::Attr(..)) {
                    i += 1;
                }
                let width = items[start..i]
                    .iter()
                    .map(|it| match it {
                        Item::Attr(n, _) => n.len(),
                        Item::Block(_) => 0,
                    })
                    .max()
                    .unwrap_or(0);
                for it in &items[start..i] {
                    if let Item::Attr(name, value) = it {
                        let _ = writeln!(out, "{indent}{name:<width$} = {}", expr_to_string(value));
                    }
                }
            }
            Item::Block(b) => {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&indent);
                out.push_str(&b.kind);
                for l in &b.labels {
                    out.push(' ');
                    out.push_str(&quote(l));
                }
                if b.body.0.is_empty() {
                    out.push_str(" {}\n");
                } else {
                    out.push_str(" {\n");
                    write_body(out, &b.body, depth + 1);
                    out.push_str(&indent);
                    out.push_str("}\n");
                }
                i += 1;
                if i < items.len() && matches!(items[i], Item::Attr(..)) {
                    out.push('\n');
                }
            }
        }
    }
}

/// A whole file: top-level blocks separated by blank lines.
pub fn to_string(body: &Body) -> String {
    let mut out = String::new();
    write_body(&mut out, body, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_break_out() {
        assert_eq!(escape(r#"a"b"#), r#"a\"b"#);
        assert_eq!(escape(r"C:\dir"), r"C:\\dir");
        assert_eq!(escape("${HOME}"), "$${HOME}");
        assert_eq!(escape("%{ if x }"), "%%{ if x }");
        assert_eq!(escape("$HOME and 100%"), "$HOME and 100%");
        assert_eq!(escape("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escape("\u{1}\u{7f}"), "\\u0001\\u007f");
        assert_eq!(escape("$${x}"), "$$${x}");
        assert_eq!(escape("naïve ✓"), "naïve ✓");
    }

    #[test]
    fn aligns_attribute_runs_and_separates_blocks() {
        let mut inner = Body::new();
        inner
            .attr("type", Expr::Type(TypeExpr::String))
            .attr("description", Expr::str("x"));
        let mut top = Body::new();
        top.block(Block::new("variable", &["a"], inner));
        let mut src = Body::new();
        src.attr("a", Expr::Int(1))
            .attr("long_name", Expr::Bool(true))
            .attr(
                "t",
                Expr::Template(vec![
                    Part::Lit("${lit}/".into()),
                    Part::Interp(Expr::var("a")),
                ]),
            );
        top.block(Block::new("source", &["qemu", "x\"y"], src));
        assert_eq!(
            to_string(&top),
            "variable \"a\" {\n  type        = string\n  description = \"x\"\n}\n\n\
             source \"qemu\" \"x\\\"y\" {\n  a         = 1\n  long_name = true\n  \
             t         = \"$${lit}/${var.a}\"\n}\n"
        );
    }

    #[test]
    fn nested_binary_operations_are_parenthesised() {
        let e = Expr::bin(
            Expr::bin(Expr::var("n"), BinOp::Gt, Expr::Int(0)),
            BinOp::And,
            Expr::bin(
                Expr::call("floor", vec![Expr::var("n")]),
                BinOp::Eq,
                Expr::var("n"),
            ),
        );
        assert_eq!(expr_to_string(&e), "(var.n > 0) && (floor(var.n) == var.n)");
    }

    #[test]
    #[should_panic(expected = "not an HCL identifier")]
    fn references_refuse_non_identifiers() {
        Expr::ref_("var.a}${b");
    }
}
