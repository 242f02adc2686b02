//! `warren token create|list|revoke`: join tokens, through the admin API.

use super::api::{ApiArgs, Client};
use super::fmt;
use super::table::{
    Align::{Left, Right},
    Table,
};
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use std::time::Duration;
use warren_control::api::{CreatedToken, TokenInfo};

/// Arguments of `warren token`.
#[derive(Args)]
#[command(
    about = "Create, list and revoke join tokens",
    long_about = "Create, list and revoke join tokens.\n\n\
        A join token carries everything `warren join` needs: where the control plane is, \
        the fingerprint of its certificate (so the worker talks to the right one) and a \
        secret. Treat it as a password until it expires or is used up. The control plane \
        stores only a hash of the secret.",
    after_help = "Examples:\n  \
        warren token create                    # one join, valid for an hour\n  \
        warren token create --ttl 7d --uses 10\n  \
        warren token list --json\n  \
        warren token revoke 3f2a9c0d11e4b7a8"
)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (only the token, on stdout).
    Create {
        /// How long it stays valid, e.g. 30m, 2h, 7d.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// How many joins it admits.
        #[arg(long, value_name = "N", default_value_t = 1)]
        uses: u32,
    },
    /// List every token with its state (active, expired, used, revoked).
    List {
        /// Print JSON: {"tokens":[{"id","created","expires","uses","used","state"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id: it admits no more joins.
    Revoke {
        /// The token's id, as `warren token list` shows it.
        id: String,
    },
}

/// Runs `warren token`.
pub fn run(args: TokenArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    match args.command {
        TokenCommand::Create { ttl, uses } => {
            let created: CreatedToken = client.call(
                "POST",
                "/v1/tokens",
                Some(json!({ "ttl_secs": ttl.as_secs(), "uses": uses })),
            )?;
            println!("{}", created.token);
        }
        TokenCommand::List { json } => {
            let listed: serde_json::Value = client.call("GET", "/v1/tokens", None)?;
            if json {
                println!("{listed}");
                return Ok(());
            }
            let tokens: Vec<TokenInfo> = serde_json::from_value(listed["tokens"].clone())?;
            print!("{}", table(&tokens, warren_os::unix_now()));
        }
        TokenCommand::Revoke { id } => {
            let _: serde_json::Value = client.call("DELETE", &format!("/v1/tokens/{id}"), None)?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}

/// The human table of `warren token list`.
fn table(tokens: &[TokenInfo], now: u64) -> String {
    if tokens.is_empty() {
        return "no join tokens (create one with `warren token create`)\n".to_owned();
    }
    let mut table = Table::new([
        ("ID", Left),
        ("STATE", Left),
        ("USES", Right),
        ("EXPIRES", Left),
        ("CREATED", Left),
    ]);
    for token in tokens {
        table.row([
            &token.id,
            &token.state,
            &format!("{}/{}", token.used, token.uses),
            &fmt::relative(token.expires, now),
            &fmt::relative(token.created, now),
        ]);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_state_uses_and_times_in_words() {
        let tokens = [
            TokenInfo {
                id: "0102030405060708".to_owned(),
                created: 1000,
                expires: 4600,
                uses: 3,
                used: 1,
                state: "active".to_owned(),
            },
            TokenInfo {
                id: "a0b1c2d3e4f5a6b7".to_owned(),
                created: 0,
                expires: 900,
                uses: 100,
                used: 100,
                state: "used".to_owned(),
            },
        ];
        assert_eq!(
            table(&tokens, 1120),
            "ID                STATE      USES  EXPIRES  CREATED\n\
             0102030405060708  active      1/3  in 58m   2m ago\n\
             a0b1c2d3e4f5a6b7  used    100/100  3m ago   18m ago\n"
        );
        assert!(table(&[], 0).contains("warren token create"));
    }
}
