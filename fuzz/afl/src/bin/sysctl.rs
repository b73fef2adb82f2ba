//! AFL++ entry point of the `sysctl` target (its body: cairn_fuzz::sysctl).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::run("sysctl", data);
    });
}
