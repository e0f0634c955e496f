//! `nsw` with the hooks the crash tests and benchmarks use (the
//! `test-hooks` feature); never installed, never shipped.

fn main() -> std::process::ExitCode {
    nsw::cli::main()
}
