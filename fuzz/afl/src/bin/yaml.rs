//! AFL++ entry point of the `yaml` target (its body: cairn_fuzz::yaml).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::run("yaml", data);
    });
}
