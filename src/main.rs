//! The `dockerhub-audit` command line: everything is wired in [`dockerhub_audit::cli`].

fn main() -> std::process::ExitCode {
    dockerhub_audit::cli::main()
}
