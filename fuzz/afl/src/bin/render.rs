//! AFL++ entry point of the `render` target (its body: cairn_fuzz::render).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::run("render", data);
    });
}
