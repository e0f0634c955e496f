fn main() -> std::process::ExitCode {
    nsw::cli::main()
}
