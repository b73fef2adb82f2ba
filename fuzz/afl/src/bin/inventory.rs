//! AFL++ entry point of the `inventory` target (its body: cairn_fuzz::inventory).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::run("inventory", data);
    });
}
