//! AFL++ entry point of the `serve_request` target (its body: cairn_fuzz::run("serve_request", ..)).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        cairn_fuzz::run("serve_request", data);
    });
}
