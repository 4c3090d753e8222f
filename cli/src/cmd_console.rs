//! `compushare console HOST[:PORT] --key FILE`: a rig's operator console over the network.
//!
//! A Noise session to the rig's `CONSOLE_LISTEN` (port 7734 when none is given) with the
//! operator key FILE, which the rig must list in `CONSOLE_KEYS`. The rig's key is pinned
//! with `--rig-key HEX`; without it the key the rig proves is accepted and printed (on
//! stderr) so that it can be pinned from then on. Then: `--command LINE` runs one command;
//! on a terminal, a prompt; with piped input, one command per line. The exit status is
//! non-zero when the rig refuses the session or any command fails.
//!
//! `compushare console RIG_KEY --via MANAGER --manager-key HEX --key FILE`: the same shell of
//! a rig behind a farm's NAT, relayed by its manager over the rig's own manager session
//! (no inbound port on the rig). The manager allows it to operators of the rig's farm only.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use compushare_client::admin::AdminClient;
use compushare_controller::console::ParseError;
use compushare_controller::ops::DEFAULT_CONSOLE_PORT;
use compushare_protocol::hex;
use compushare_protocol::limits::CONSOLE_LINE;
use compushare_protocol::msg::{
    AdminToManager, ManagerToAdmin, OperatorToRig, RigToOperator, PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp_to, TcpChannel, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::Identity;
use compushare_protocol::types::PublicKey;

/// Arguments of `compushare console`.
#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// The rig, HOST or HOST:PORT (port 7734 by default); with `--via`, the rig's public key
    /// (64 hex digits).
    #[arg(value_name = "HOST[:PORT] | RIG_KEY")]
    rig: String,
    /// Reach the rig through this management node (HOST:PORT) instead of directly.
    #[arg(long, value_name = "ADDR", requires = "manager_key")]
    via: Option<String>,
    /// The management node's public key (64 hex digits), with `--via`.
    #[arg(long = "manager-key", value_name = "HEX")]
    manager_key: Option<String>,
    /// Operator key file (listed in the rig's CONSOLE_KEYS; make one with `compushare keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The rig's public key (64 hex digits) to pin; without it the rig's key is learnt and
    /// printed.
    #[arg(long = "rig-key", value_name = "HEX")]
    rig_key: Option<String>,
    /// Run this one command and exit.
    #[arg(long, value_name = "LINE")]
    command: Option<String>,
}

/// `HOST` -> `HOST:7734`; `HOST:PORT` and `[V6]:PORT` as given; a bare IPv6 address gets
/// brackets.
fn with_port(rig: &str) -> String {
    if rig.starts_with('[') {
        if rig.contains("]:") {
            rig.to_owned()
        } else {
            format!("{rig}:{DEFAULT_CONSOLE_PORT}")
        }
    } else if rig.matches(':').count() > 1 {
        format!("[{rig}]:{DEFAULT_CONSOLE_PORT}")
    } else if rig.contains(':') {
        rig.to_owned()
    } else {
        format!("{rig}:{DEFAULT_CONSOLE_PORT}")
    }
}

enum Session {
    /// The rig's own network console.
    Direct { ch: TcpChannel, next: u32 },
    /// Relayed by the rig's manager.
    Via {
        client: Box<AdminClient>,
        rig: PublicKey,
    },
}

impl Session {
    /// Sends one line and waits for its reply: `(ok, text)`.
    async fn ask(&mut self, line: &str) -> anyhow::Result<(bool, String)> {
        let mut text = heapless::String::<CONSOLE_LINE>::new();
        if text.push_str(line).is_err() {
            // The rig's own words, without a round trip.
            return Ok((
                false,
                format!("error: {}", ParseError::TooLong { len: line.len() }),
            ));
        }
        let (ch, next) = match self {
            Session::Direct { ch, next } => (ch, next),
            Session::Via { client, rig } => {
                let req = AdminToManager::Console {
                    rig: *rig,
                    line: text,
                };
                return match client.request(&req).await.context("relaying to the rig")? {
                    ManagerToAdmin::ConsoleReply(r) => Ok((r.ok, r.text.to_string())),
                    _ => bail!("the manager answered the console line with something else"),
                };
            }
        };
        *next = next.wrapping_add(1);
        let request = *next;
        ch.send(&OperatorToRig::Line { request, text })
            .await
            .context("sending to the rig")?;
        match *ch
            .recv::<RigToOperator>()
            .await
            .context("reading the rig's reply")?
        {
            RigToOperator::Reply(r) if r.request == request => Ok((r.ok, r.text.to_string())),
            RigToOperator::Reply(r) => {
                bail!(
                    "the rig answered request {} instead of {request}",
                    r.request
                )
            }
            RigToOperator::Refused(r) => bail!("the rig ended the session: {}", r.reason),
            RigToOperator::Welcome(_) => bail!("the rig sent Welcome twice"),
        }
    }
}

/// Connects to the rig's manager as an operator for `--via`.
fn via(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    args: &ConsoleArgs,
    identity: &Identity,
) -> anyhow::Result<(Session, String)> {
    let rig = hex::decode_array::<32>(&args.rig).map_err(|_| {
        anyhow::anyhow!(
            "with --via, RIG is the rig's public key (64 hex digits), got {:?}",
            args.rig
        )
    })?;
    let mkey = args.manager_key.as_deref().unwrap_or_default();
    let manager = hex::decode_array::<32>(mkey)
        .map_err(|_| anyhow::anyhow!("--manager-key: expected 64 hex digits, got {mkey:?}"))?;
    let client = rt
        .block_on(AdminClient::connect(addr, identity, &manager))
        .with_context(|| format!("--via {addr}"))?;
    Ok((
        Session::Via {
            client: Box::new(client),
            rig,
        },
        hex::short(&rig),
    ))
}

pub fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let identity =
        Identity::load(&args.key).with_context(|| format!("--key {}", args.key.display()))?;
    if let Some(addr) = args.via.clone() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let session = via(&rt, &addr, &args, &identity)?;
        return shell(&rt, session, args.command);
    }
    let pinned: Option<PublicKey> = args
        .rig_key
        .as_deref()
        .map(|h| {
            hex::decode_array::<32>(h)
                .map_err(|_| anyhow::anyhow!("--rig-key: expected 64 hex digits, got {h:?}"))
        })
        .transpose()?;
    let addr = with_port(&args.rig);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let session = rt.block_on(async {
        let mut ch = connect_tcp_to(addr.as_str(), &identity, pinned.as_ref(), HANDSHAKE_TIMEOUT)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        ch.send(&OperatorToRig::Hello {
            version: PROTOCOL_VERSION,
        })
        .await
        .with_context(|| format!("{addr}: sending Hello"))?;
        let welcome = match *ch
            .recv::<RigToOperator>()
            .await
            .with_context(|| format!("{addr}: waiting for Welcome"))?
        {
            RigToOperator::Welcome(w) => w,
            RigToOperator::Refused(r) => {
                bail!(
                    "{addr}: the rig refused the session: {} (code {})",
                    r.reason,
                    r.code
                )
            }
            RigToOperator::Reply(_) => bail!("{addr}: the rig replied before Welcome"),
        };
        if welcome.key != ch.peer() {
            bail!(
                "{addr}: the rig's Welcome names key {} but the handshake proved {}",
                hex::encode(&welcome.key),
                hex::encode(&ch.peer())
            );
        }
        if pinned.is_none() {
            eprintln!(
                "rig {} ({}) key {} (not pinned: add --rig-key {} to check it next time)",
                welcome.name,
                addr,
                hex::encode(&welcome.key),
                hex::encode(&welcome.key)
            );
        }
        Ok::<_, anyhow::Error>((Session::Direct { ch, next: 0 }, welcome.name.to_string()))
    })?;
    shell(&rt, session, args.command)
}

/// `--command LINE`, a prompt on a terminal, or one command per line of piped input.
fn shell(
    rt: &tokio::runtime::Runtime,
    session: (Session, String),
    command: Option<String>,
) -> anyhow::Result<()> {
    let (mut s, name) = session;
    let s = &mut s;
    if let Some(line) = command {
        let (ok, text) = rt.block_on(s.ask(&line))?;
        println!("{text}");
        if !ok {
            bail!("the command failed");
        }
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal();
    let mut failed = 0usize;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            print!("{name}> ");
            std::io::stdout().flush()?;
        }
        let Some(line) = lines.next() else {
            break;
        };
        let line = line.context("reading standard input")?;
        let trimmed = line.trim();
        if interactive && matches!(trimmed, "exit" | "quit") {
            break;
        }
        if trimmed.is_empty() {
            continue;
        }
        let (ok, text) = rt.block_on(s.ask(trimmed))?;
        if !ok {
            failed += 1;
        }
        println!("{text}");
    }
    if failed > 0 && !interactive {
        bail!("{failed} command(s) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_port;

    #[test]
    fn default_port() {
        assert_eq!(with_port("rig7"), "rig7:7734");
        assert_eq!(with_port("10.0.0.5:9000"), "10.0.0.5:9000");
        assert_eq!(with_port("::1"), "[::1]:7734");
        assert_eq!(with_port("[::1]"), "[::1]:7734");
        assert_eq!(with_port("[::1]:8000"), "[::1]:8000");
    }
}
