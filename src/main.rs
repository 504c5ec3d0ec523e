//! The `salve` command line. Wiring only: every subcommand's logic lives in the library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.log_format, args.verbose);
    match cli::run(args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("salve: {e:#}");
            ExitCode::from(2)
        }
    }
}
