//! Rooms in the server: the room host built from the configuration's parties plus the ones an
//! application registers ([`crate::ServerBuilder::room`]).

use cairn_rooms::builtin::chat::{ChatConfig, ChatRoom};
use cairn_rooms::builtin::tinybase::{TinyBaseConfig, TinyBaseRoom};
use cairn_rooms::builtin::yjs::{YjsConfig, YjsRoom};
use cairn_rooms::{HostConfig, RoomHost, RoomHostBuilder};

use crate::config::{Config, PartyConfig};

/// Adds parties to a host builder (an application's registrations).
pub(crate) type Registrar = Box<dyn FnOnce(RoomHostBuilder) -> RoomHostBuilder + Send>;

/// The kinds a `[parties.NAME]` table may name.
pub(crate) const PARTY_KINDS: [&str; 3] = ["chat", "tinybase", "yjs"];

/// Checks a configured party: a known kind with options it understands.
///
/// # Errors
/// What is wrong, as text for the configuration error.
pub(crate) fn check_party(party: &PartyConfig) -> Result<(), String> {
    match party.kind.as_str() {
        "chat" => options::<ChatConfig>(party).map(drop),
        "tinybase" => options::<TinyBaseConfig>(party)?.check(),
        "yjs" => options::<YjsConfig>(party).map(drop),
        other => Err(format!("unknown kind {other:?}; expected one of {}", PARTY_KINDS.join(", "))),
    }
}

fn options<T: serde::de::DeserializeOwned>(party: &PartyConfig) -> Result<T, String> {
    party.options.clone().try_into().map_err(|e: toml::de::Error| format!("invalid options: {}", e.message()))
}

/// Builds the room host: the configured parties, then `extra` (an application's parties,
/// which replace configured ones of the same name).
///
/// # Errors
/// A party name that is not a valid namespace, or options of the wrong shape.
pub(crate) fn build_host(
    runtime: cairn_runtime::Runtime,
    config: &Config,
    extra: Vec<Registrar>,
) -> Result<RoomHost, String> {
    let mut builder = RoomHost::builder(runtime).config(HostConfig {
        hibernate_after: std::time::Duration::from_millis(config.rooms.hibernate_after_ms),
        max_queued_bytes: config.rooms.max_queued_bytes,
        ..HostConfig::default()
    });
    for (name, party) in &config.parties {
        builder = match party.kind.as_str() {
            "chat" => {
                let options: ChatConfig = options(party)?;
                builder.room_with(name, move |_| ChatRoom::new(options.clone()))
            }
            "tinybase" => {
                let options: TinyBaseConfig = options(party)?;
                options.check()?;
                builder.room_with(name, move |_| TinyBaseRoom::new(options.clone()))
            }
            "yjs" => {
                let options: YjsConfig = options(party)?;
                builder.room_with(name, move |_| YjsRoom::new(options.clone()))
            }
            other => return Err(format!("party {name:?}: unknown kind {other:?}")),
        };
    }
    for registrar in extra {
        builder = registrar(builder);
    }
    builder.build().map_err(|e| e.to_string())
}
