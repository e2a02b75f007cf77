//! The devices the plugin knows: each hcore device, the local names its sources give it,
//! its physical aliases (so a device seen through two sources is one), its routes for
//! commands, what it reported, and which devices changed since the writer last wrote
//! them to state. Bounded: at most `MAX_DEVICES`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hcore_client::protocol::now_ms;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{Availability, Device, DeviceState, DeviceWithState, Property};
use crate::sources::{Description, Local, Route, Update};

/// Most devices one plugin keeps.
pub const MAX_DEVICES: usize = 5000;
/// Most physical identities one device keeps (a discovery config may list many).
const MAX_ALIASES: usize = 16;

/// Sources whose routes commands prefer (native before Home Assistant's discovery).
const PREFERENCE: [&str; 3] = ["zigbee2mqtt", "tasmota", "homeassistant"];

/// What is kept in storage for a known device: enough to list and command it after a
/// restart, before its sources speak again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Known {
    pub device: Device,
    pub locals: Vec<Local>,
    pub aliases: Vec<String>,
    pub routes: BTreeMap<String, Route>,
    /// What each source says the properties are; the device's are their union, the
    /// preferred source's description winning.
    #[serde(default)]
    pub properties: BTreeMap<String, BTreeMap<String, Property>>,
}

impl Known {
    fn merge_properties(&mut self) {
        let mut merged = BTreeMap::new();
        for source in &self.device.sources {
            for (name, p) in self.properties.get(source).into_iter().flatten() {
                merged.entry(name.clone()).or_insert_with(|| p.clone());
            }
        }
        self.device.properties = merged;
    }
}

struct Entry {
    known: Known,
    reported: Map<String, Value>,
    /// The topic of the message behind the latest report.
    topic: Option<String>,
}

/// What applying updates changed, for the plugin to act on.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Devices whose availability changed: (id, new state).
    pub availability: Vec<(String, String)>,
    /// Devices whose description changed (to store again).
    pub described: Vec<String>,
    /// Devices whose reported values changed.
    pub reported: Vec<String>,
}

#[derive(Default)]
pub struct Registry {
    devices: BTreeMap<String, Entry>,
    locals: HashMap<Local, String>,
    aliases: HashMap<String, String>,
    /// Devices to write to state.
    dirty: BTreeSet<String>,
}

impl Registry {
    /// A device known from storage (availability unknown until it speaks).
    pub fn restore(&mut self, mut known: Known) {
        if self.devices.len() >= MAX_DEVICES {
            return;
        }
        known.device.availability = Availability::unknown(now_ms());
        let id = known.device.id.clone();
        for l in &known.locals {
            self.locals.insert(l.clone(), id.clone());
        }
        for a in &known.aliases {
            self.aliases.insert(a.clone(), id.clone());
        }
        self.devices.insert(
            id.clone(),
            Entry {
                known,
                reported: Map::new(),
                topic: None,
            },
        );
        self.dirty.insert(id);
    }

    /// Applies what a source read from one message on `topic`.
    pub fn apply(&mut self, updates: Vec<Update>, topic: &str, changes: &mut Changes) {
        for u in updates {
            match u {
                Update::Describe(d) => self.describe(d, changes),
                Update::Report { local, values } => self.report(&local, values, topic, changes),
                Update::Availability { local, online } => {
                    self.availability(&local, online, changes)
                }
                Update::Forget(local) => self.forget(&local, changes),
            }
        }
    }

    fn describe(&mut self, mut d: Description, changes: &mut Changes) {
        d.aliases.truncate(MAX_ALIASES);
        let existing = self
            .locals
            .get(&d.local)
            .or_else(|| d.aliases.iter().find_map(|a| self.aliases.get(a)))
            .cloned();
        let id = match existing {
            Some(id) => id,
            None => {
                if self.devices.len() >= MAX_DEVICES {
                    tracing::warn!(
                        device = d.name,
                        "{MAX_DEVICES} devices known already; ignored"
                    );
                    return;
                }
                let id = self.free_id(&d.suggested_id);
                let device = Device {
                    id: id.clone(),
                    name: d.name.clone(),
                    manufacturer: None,
                    model: None,
                    sources: Vec::new(),
                    availability: Availability::unknown(now_ms()),
                    last_seen: None,
                    properties: BTreeMap::new(),
                };
                let known = Known {
                    device,
                    locals: Vec::new(),
                    aliases: Vec::new(),
                    routes: BTreeMap::new(),
                    properties: BTreeMap::new(),
                };
                self.devices.insert(
                    id.clone(),
                    Entry {
                        known,
                        reported: Map::new(),
                        topic: None,
                    },
                );
                changes.added.push(id.clone());
                id
            }
        };
        self.locals.insert(d.local.clone(), id.clone());
        let Some(e) = self.devices.get_mut(&id) else {
            return;
        };
        let before = serde_json::to_value(&e.known).ok();
        let k = &mut e.known;
        let source = d.local.source.clone();
        let native_known = k.routes.keys().any(|s| s != "homeassistant");
        if !k.locals.contains(&d.local) {
            k.locals.push(d.local.clone());
        }
        for a in d.aliases {
            if !k.aliases.contains(&a) && k.aliases.len() < MAX_ALIASES {
                self.aliases.insert(a.clone(), id.clone());
                k.aliases.push(a);
            }
        }
        if !k.device.sources.contains(&source) {
            k.device.sources.push(source.clone());
            k.device
                .sources
                .sort_by_key(|s| PREFERENCE.iter().position(|p| p == s).unwrap_or(9));
        }
        // A native source describes the device; Home Assistant's discovery of the same
        // device adds only what the native one does not say.
        let authoritative = source != "homeassistant" || !native_known;
        if authoritative {
            k.device.name = d.name;
            k.device.manufacturer = d.manufacturer.or(k.device.manufacturer.take());
            k.device.model = d.model.or(k.device.model.take());
        }
        k.properties.insert(source.clone(), d.properties);
        k.merge_properties();
        k.routes.insert(source, d.route);
        if before != serde_json::to_value(&e.known).ok() {
            changes.described.push(id);
        }
    }

    fn free_id(&self, suggested: &str) -> String {
        if !self.devices.contains_key(suggested) {
            return suggested.to_string();
        }
        (2..)
            .map(|n| format!("{suggested}_{n}"))
            .find(|id| !self.devices.contains_key(id))
            .unwrap_or_default()
    }

    fn report(
        &mut self,
        local: &Local,
        values: Map<String, Value>,
        topic: &str,
        changes: &mut Changes,
    ) {
        let Some(id) = self.locals.get(local).cloned() else {
            return;
        };
        let Some(e) = self.devices.get_mut(&id) else {
            return;
        };
        // Home Assistant's view of a device a native source also reports is not read
        // twice (its state topics are the native ones).
        if local.source == "homeassistant" && e.known.routes.keys().any(|s| s != "homeassistant") {
            return;
        }
        for (k, v) in values {
            e.reported.insert(k, v);
        }
        e.topic = Some(topic.to_string());
        e.known.device.last_seen = Some(now_ms());
        if e.known.device.availability.state == "unknown" {
            e.known.device.availability = Availability {
                state: "online".into(),
                since: now_ms(),
            };
            changes.availability.push((id.clone(), "online".into()));
        }
        self.dirty.insert(id.clone());
        changes.reported.push(id);
    }

    fn availability(&mut self, local: &Local, online: bool, changes: &mut Changes) {
        let Some(id) = self.locals.get(local).cloned() else {
            return;
        };
        let Some(e) = self.devices.get_mut(&id) else {
            return;
        };
        let state = if online { "online" } else { "offline" };
        if e.known.device.availability.state != state {
            e.known.device.availability = Availability {
                state: state.into(),
                since: now_ms(),
            };
            changes.availability.push((id.clone(), state.into()));
            self.dirty.insert(id);
        }
    }

    fn forget(&mut self, local: &Local, changes: &mut Changes) {
        let Some(id) = self.locals.remove(local) else {
            return;
        };
        let Some(e) = self.devices.get_mut(&id) else {
            return;
        };
        e.known.locals.retain(|l| l != local);
        e.known.routes.remove(&local.source);
        e.known.properties.remove(&local.source);
        e.known.device.sources.retain(|s| s != &local.source);
        e.known.merge_properties();
        if e.known.locals.is_empty() {
            let e = self.devices.remove(&id).expect("present");
            for a in e.known.aliases {
                self.aliases.remove(&a);
            }
            self.dirty.remove(&id);
            changes.removed.push(id);
        } else {
            changes.described.push(id);
        }
    }

    pub fn list(&self) -> Vec<Device> {
        self.devices
            .values()
            .map(|e| e.known.device.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<DeviceWithState> {
        let e = self.devices.get(id)?;
        Some(DeviceWithState {
            device: e.known.device.clone(),
            reported: e.reported.clone(),
        })
    }

    pub fn known(&self, id: &str) -> Option<&Known> {
        self.devices.get(id).map(|e| &e.known)
    }

    pub fn reported(&self, id: &str) -> Option<&Map<String, Value>> {
        self.devices.get(id).map(|e| &e.reported)
    }

    /// The route commands for `props` take: the first source (by preference) that
    /// reaches them all.
    pub fn route(&self, id: &str, props: &Map<String, Value>) -> Option<&Route> {
        let k = &self.devices.get(id)?.known;
        k.device
            .sources
            .iter()
            .filter_map(|s| k.routes.get(s))
            .find(|r| r.covers(props))
    }

    /// Takes the devices to write to state, with what to write.
    pub fn take_dirty(&mut self) -> Vec<(String, DeviceState)> {
        let ids = std::mem::take(&mut self.dirty);
        ids.into_iter()
            .filter_map(|id| {
                let e = self.devices.get(&id)?;
                let state = DeviceState {
                    reported: e.reported.clone(),
                    availability: e.known.device.availability.state.clone(),
                    last_seen: e.known.device.last_seen,
                    source_topic: e.topic.clone(),
                };
                Some((id, state))
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.devices.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Property;

    fn description(source: &str, name: &str, aliases: Vec<String>) -> Description {
        Description {
            local: Local::new(source, name),
            suggested_id: crate::model::slug(name),
            name: name.into(),
            manufacturer: None,
            model: None,
            properties: BTreeMap::from([("state".to_string(), Property::text(false))]),
            route: Route::JsonSet {
                topic: format!("{name}/set"),
            },
            aliases,
        }
    }

    #[test]
    fn aliases_join_sources_ids_do_not_collide_and_bounds_hold() {
        let mut r = Registry::default();
        let mut changes = Changes::default();
        let many: Vec<String> = (0..100).map(|i| format!("ha:{i}")).collect();
        r.apply(
            vec![Update::Describe(description(
                "zigbee2mqtt",
                "lamp",
                vec!["ieee:0x1".into()],
            ))],
            "t",
            &mut changes,
        );
        r.apply(
            vec![Update::Describe(description(
                "homeassistant",
                "0x1-light",
                [vec!["ieee:0x1".into()], many].concat(),
            ))],
            "t",
            &mut changes,
        );
        // Another physical device with the same name gets its own id.
        r.apply(
            vec![Update::Describe(description(
                "tasmota",
                "lamp",
                vec!["mac:aa".into()],
            ))],
            "t",
            &mut changes,
        );
        assert_eq!(changes.added, ["lamp", "lamp_2"]);
        let lamp = r.known("lamp").unwrap();
        assert_eq!(lamp.device.sources, ["zigbee2mqtt", "homeassistant"]);
        assert_eq!(lamp.aliases.len(), MAX_ALIASES);
        assert!(r.aliases.len() <= 2 * MAX_ALIASES);
    }
}
