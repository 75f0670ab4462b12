//! Entry point: parse the command line, set up logging, run. Environment variables are read here only.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = shuzhu::cli::Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.default_log_filter().to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colours only on a terminal, and never under NO_COLOR (https://no-color.org).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .with_target(false);
    match cli.log_format() {
        shuzhu::cli::LogFormat::Text => builder.init(),
        shuzhu::cli::LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).init(),
    }
    match shuzhu::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", shuzhu::cli::one_line(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
