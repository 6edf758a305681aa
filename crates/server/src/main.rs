//! `maveraa`: the Maveraa server and its admin commands.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = maveraa_server::cli::Cli::parse();
    match maveraa_server::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
