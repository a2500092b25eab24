//! Runs a Cairn server that hosts the counter room as party `counter`, next to the built-in
//! parties, configured like `cairn serve` (`CAIRN_*` variables, `--config`-less):
//!
//! ```text
//! cargo run -p counter-room
//! # then connect: ws://127.0.0.1:8787/parties/counter/my-room?name=ann
//! ```

fn main() -> anyhow::Result<()> {
    let config = cairn_server::Config::load(None, |k| std::env::var(k).ok(), &cairn_server::Overrides::default())?;
    cairn_server::Server::builder().config(config).room::<counter_room::Counter>("counter").run()
}
