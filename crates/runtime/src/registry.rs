//! A durable registry of named resources (KV namespaces, SQL databases), kept in a system object.
//!
//! Each registry is the object `("_cairn_sys", kind)`. Its KV holds `id:{id}` → the resource
//! (JSON) and `name:{name}` → the id, written in one event so that names stay unique. The whole
//! registry is cached in memory on first use (registries hold thousands of entries, not
//! millions), so checking that a resource exists costs no event; every change goes through the
//! object first and updates the cache after it is durable.

use std::collections::BTreeMap;
use std::sync::RwLock;

use cairn_storage::ListOptions;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OnceCell};

use crate::{Error, ObjectRef, Result, Runtime};

/// The namespace of the runtime's own objects. User-facing layers must refuse it.
pub const SYSTEM_NAMESPACE: &str = "_cairn_sys";

/// One registered resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Stable identifier (32 lowercase hex digits), the name of the resource's object.
    pub id: String,
    /// Unique, user-chosen name (title).
    pub name: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

/// Why a registry change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Another resource has this name.
    #[error("a resource named {name:?} already exists")]
    NameTaken {
        /// The name asked for.
        name: String,
    },
    /// No resource has this id.
    #[error("no resource with id {id:?}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] Error),
}

impl From<cairn_storage::Error> for RegistryError {
    fn from(e: cairn_storage::Error) -> Self {
        RegistryError::Runtime(Error::Storage(e))
    }
}

/// A registry of one kind of resource. Cheap to share behind an `Arc`.
pub struct Registry {
    object: ObjectRef,
    /// id → resource, loaded on first use.
    cache: OnceCell<RwLock<BTreeMap<String, Resource>>>,
    /// Serializes changes so the cache follows the object's order.
    writes: Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("kind", &self.object.name()).finish()
    }
}

fn id_key(id: &str) -> String {
    format!("id:{id}")
}

fn name_key(name: &str) -> String {
    format!("name:{name}")
}

impl Registry {
    /// The registry `kind` (for example `kv-namespaces`) of a runtime.
    ///
    /// # Errors
    /// [`cairn_storage::Error::InvalidName`] for an unacceptable kind.
    pub fn new(runtime: &Runtime, kind: &str) -> Result<Registry> {
        Ok(Registry { object: runtime.object(SYSTEM_NAMESPACE, kind)?, cache: OnceCell::new(), writes: Mutex::new(()) })
    }

    async fn cache(&self) -> Result<&RwLock<BTreeMap<String, Resource>>> {
        self.cache
            .get_or_try_init(|| async {
                let mut all = BTreeMap::new();
                let mut after: Option<String> = None;
                loop {
                    let mut options = ListOptions::new().prefix("id:").limit(1000);
                    if let Some(a) = &after {
                        options = options.start_after(a.clone());
                    }
                    let page = self.object.list(options).await?;
                    let done = page.len() < 1000;
                    for (key, value) in page {
                        let resource: Resource = value.to_serde(&key)?;
                        all.insert(resource.id.clone(), resource);
                        after = Some(key);
                    }
                    if done {
                        break;
                    }
                }
                Ok::<_, Error>(RwLock::new(all))
            })
            .await
    }

    fn read<T>(lock: &RwLock<BTreeMap<String, Resource>>, f: impl FnOnce(&BTreeMap<String, Resource>) -> T) -> T {
        match lock.read() {
            Ok(map) => f(&map),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn existing(lock: &RwLock<BTreeMap<String, Resource>>, id: &str) -> Result<Resource, RegistryError> {
        Self::read(lock, |m| m.get(id).cloned()).ok_or_else(|| RegistryError::NotFound { id: id.to_owned() })
    }

    fn write(lock: &RwLock<BTreeMap<String, Resource>>, f: impl FnOnce(&mut BTreeMap<String, Resource>)) {
        match lock.write() {
            Ok(mut map) => f(&mut map),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The resource with this id.
    ///
    /// # Errors
    /// The runtime's, if the registry cannot be loaded.
    pub async fn get(&self, id: &str) -> Result<Option<Resource>> {
        let cache = self.cache().await?;
        Ok(Self::read(cache, |m| m.get(id).cloned()))
    }

    /// The resource with this name.
    ///
    /// # Errors
    /// The runtime's, if the registry cannot be loaded.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<Resource>> {
        let cache = self.cache().await?;
        Ok(Self::read(cache, |m| m.values().find(|r| r.name == name).cloned()))
    }

    /// Every resource, by creation time then id.
    ///
    /// # Errors
    /// The runtime's, if the registry cannot be loaded.
    pub async fn list(&self) -> Result<Vec<Resource>> {
        let cache = self.cache().await?;
        let mut all = Self::read(cache, |m| m.values().cloned().collect::<Vec<_>>());
        all.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Registers a new resource named `name` with a fresh random id.
    ///
    /// # Errors
    /// [`RegistryError::NameTaken`]; the runtime's.
    pub async fn create(&self, name: &str, now_ms: i64) -> Result<Resource, RegistryError> {
        let _guard = self.writes.lock().await;
        let cache = self.cache().await?;
        let resource =
            Resource { id: uuid::Uuid::new_v4().simple().to_string(), name: name.to_owned(), created_ms: now_ms };
        let r = resource.clone();
        self.object
            .run(move |s| {
                if s.get_value(&name_key(&r.name))?.is_some() {
                    return Err(RegistryError::NameTaken { name: r.name.clone() });
                }
                s.put(&id_key(&r.id), &r)?;
                s.put(&name_key(&r.name), &r.id)?;
                Ok(())
            })
            .await?;
        Self::write(cache, |m| {
            m.insert(resource.id.clone(), resource.clone());
        });
        Ok(resource)
    }

    /// Gives resource `id` a new name.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::NameTaken`]; the runtime's.
    pub async fn rename(&self, id: &str, new_name: &str) -> Result<Resource, RegistryError> {
        let _guard = self.writes.lock().await;
        let cache = self.cache().await?;
        let mut resource = Self::existing(cache, id)?;
        if resource.name == new_name {
            return Ok(resource);
        }
        let old_name = std::mem::replace(&mut resource.name, new_name.to_owned());
        let r = resource.clone();
        self.object
            .run(move |s| {
                if s.get_value(&name_key(&r.name))?.is_some() {
                    return Err(RegistryError::NameTaken { name: r.name.clone() });
                }
                s.delete(&name_key(&old_name))?;
                s.put(&id_key(&r.id), &r)?;
                s.put(&name_key(&r.name), &r.id)?;
                Ok(())
            })
            .await?;
        Self::write(cache, |m| {
            m.insert(resource.id.clone(), resource.clone());
        });
        Ok(resource)
    }

    /// Unregisters resource `id`, returning it.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; the runtime's.
    pub async fn remove(&self, id: &str) -> Result<Resource, RegistryError> {
        let _guard = self.writes.lock().await;
        let cache = self.cache().await?;
        let resource = Self::existing(cache, id)?;
        let r = resource.clone();
        self.object
            .run(move |s| {
                s.delete(&id_key(&r.id))?;
                s.delete(&name_key(&r.name))?;
                Ok::<_, Error>(())
            })
            .await?;
        Self::write(cache, |m| {
            m.remove(id);
        });
        Ok(resource)
    }
}
