//! `conditional-include` conditions: `<var> <op> <value>`, rpm-ostree's syntax.
//!
//! Values are `true`/`false`, integers, or "double-quoted strings". Comparing values of different
//! types is an error rather than false, so a typo such as `prod == "false"` cannot silently skip
//! an include. `<`, `<=`, `>`, `>=` need numbers.

use std::fmt;

/// A variable's value: what `variables`, `releasever`, `basearch` and `--var` define.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum VarValue {
    Bool(bool),
    Number(i64),
    String(String),
}

impl VarValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            VarValue::Bool(_) => "boolean",
            VarValue::Number(_) => "number",
            VarValue::String(_) => "string",
        }
    }
}

impl fmt::Display for VarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::Bool(b) => write!(f, "{b}"),
            VarValue::Number(n) => write!(f, "{n}"),
            VarValue::String(s) => write!(f, "{s}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub var: String,
    pub op: Op,
    pub value: VarValue,
}

#[derive(Debug)]
pub(crate) enum EvalError {
    Undefined,
    TypeMismatch {
        var_type: &'static str,
        value_type: &'static str,
    },
    NotNumbers(&'static str),
}

pub(crate) fn parse(text: &str) -> Result<Condition, String> {
    let s = text.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    if end == 0 {
        return Err("expected `<variable> <op> <value>`, e.g. `releasever >= 41`".into());
    }
    let var = s[..end].to_string();
    let rest = s[end..].trim_start();
    let (op, rest) = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ]
    .iter()
    .find_map(|(t, op)| rest.strip_prefix(t).map(|r| (*op, r)))
    .ok_or_else(|| {
        format!(
            "expected an operator (==, !=, <, <=, >, >=) after `{var}`, found `{}`",
            rest.split_whitespace().next().unwrap_or("nothing")
        )
    })?;
    let v = rest.trim();
    let value = match v {
        "true" => VarValue::Bool(true),
        "false" => VarValue::Bool(false),
        _ if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
            VarValue::String(v[1..v.len() - 1].to_string())
        }
        _ => match v.parse::<i64>() {
            Ok(n) => VarValue::Number(n),
            Err(_) if v.is_empty() => return Err(format!("missing value after `{var}`")),
            Err(_) => {
                return Err(format!(
                    "value `{v}` is not true, false, a number or a \"double-quoted string\""
                ))
            }
        },
    };
    Ok(Condition { var, op, value })
}

pub(crate) fn eval(
    c: &Condition,
    lookup: impl Fn(&str) -> Option<VarValue>,
) -> Result<bool, EvalError> {
    let val = lookup(&c.var).ok_or(EvalError::Undefined)?;
    if std::mem::discriminant(&val) != std::mem::discriminant(&c.value) {
        return Err(EvalError::TypeMismatch {
            var_type: val.type_name(),
            value_type: c.value.type_name(),
        });
    }
    Ok(match c.op {
        Op::Eq => val == c.value,
        Op::Ne => val != c.value,
        ord => match (&val, &c.value) {
            (VarValue::Number(a), VarValue::Number(b)) => match ord {
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Eq | Op::Ne => unreachable!(),
            },
            _ => return Err(EvalError::NotNumbers(val.type_name())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(cond: &str, var: VarValue) -> Result<bool, EvalError> {
        eval(&parse(cond).unwrap(), |_| Some(var.clone()))
    }

    #[test]
    fn parses_rpm_ostree_forms() {
        let c = parse("basearch != \"s390x\"").unwrap();
        assert_eq!(c.var, "basearch");
        assert_eq!(c.op, Op::Ne);
        assert_eq!(c.value, VarValue::String("s390x".into()));
        assert_eq!(parse("releasever>=41").unwrap().value, VarValue::Number(41));
        assert_eq!(
            parse(" prod == false ").unwrap().value,
            VarValue::Bool(false)
        );
        assert!(parse("prod = false").is_err());
        assert!(parse("stream == testing")
            .unwrap_err()
            .contains("double-quoted"));
        assert!(parse("== 3").is_err());
    }

    #[test]
    fn evaluates_by_type() {
        assert!(ev("releasever < 41", VarValue::Number(40)).unwrap());
        assert!(!ev("releasever >= 41", VarValue::Number(40)).unwrap());
        assert!(ev("prod == false", VarValue::Bool(false)).unwrap());
        assert!(ev("s != \"x\"", VarValue::String("y".into())).unwrap());
        assert!(matches!(
            ev("prod == \"false\"", VarValue::Bool(false)),
            Err(EvalError::TypeMismatch {
                var_type: "boolean",
                value_type: "string"
            })
        ));
        assert!(matches!(
            ev("s < \"b\"", VarValue::String("a".into())),
            Err(EvalError::NotNumbers("string"))
        ));
        assert!(matches!(
            eval(&parse("x == 1").unwrap(), |_| None),
            Err(EvalError::Undefined)
        ));
    }
}
