//! The `caseclerk` binary: everything lives in the library; this only reports errors and exits.

fn main() -> std::process::ExitCode {
    caseclerk::shell::cli::main()
}
