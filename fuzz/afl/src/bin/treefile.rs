//! AFL++ entry point of the `treefile` target (its body: cairn_fuzz::treefile).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::run("treefile", data);
    });
}
