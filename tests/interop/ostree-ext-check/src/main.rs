//! ostree-ext's command line (`container encapsulate`, `container unencapsulate`, ...) as a test
//! oracle for cairn's container images.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ostree_ext::cli::run_from_iter(std::env::args_os()).await
}
