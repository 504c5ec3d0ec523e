//! Reading a unit's state over D-Bus, and turning systemd's property changes into
//! engine observations.

use crate::engine::UnitObservation;
use crate::policy::{ActiveState, UnitFileState};
use std::collections::HashMap;
use std::time::Duration;
use zbus::fdo::PropertiesProxy;
use zbus::names::InterfaceName;
use zbus::Connection;
use zbus_systemd::systemd1::ManagerProxy;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_INTERFACE: &str = "org.freedesktop.systemd1.Service";

/// How long one D-Bus call to systemd may take before it is abandoned and retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn unknown_state(unit: &str) -> UnitObservation {
    UnitObservation {
        name: unit.to_string(),
        active_state: None,
        sub_state: None,
        unit_file_state: None,
        result: None,
        n_restarts: None,
    }
}

/// `read_state`, or `None` if systemd did not answer in time.
pub(super) async fn read_state_timed(
    proxy: &PropertiesProxy<'_>,
    unit: &str,
) -> zbus::Result<Option<UnitObservation>> {
    match tokio::time::timeout(CALL_TIMEOUT, read_state(proxy, unit)).await {
        Ok(result) => result.map(Some),
        Err(_) => Ok(None),
    }
}

pub(super) async fn unit_properties(
    conn: &Connection,
    manager: &ManagerProxy<'_>,
    unit: &str,
) -> zbus::Result<PropertiesProxy<'static>> {
    // LoadUnit (not GetUnit) so a unit that is not loaded yet still has an object.
    let path = manager.load_unit(unit.to_string()).await?;
    PropertiesProxy::builder(conn)
        .destination(SYSTEMD)
        .path(path)
        .build()
        .await
}

/// Reads the properties the engine cares about, all at once.
async fn read_state(proxy: &PropertiesProxy<'_>, unit: &str) -> zbus::Result<UnitObservation> {
    let unit_props = proxy
        .get_all(InterfaceName::from_static_str_unchecked(UNIT_INTERFACE))
        .await?;
    let text = |map: &HashMap<String, zbus::zvariant::OwnedVariant>, key: &str| {
        map.get(key).and_then(|v| String::try_from(&**v).ok())
    };
    let mut obs = UnitObservation {
        name: unit.to_string(),
        active_state: text(&unit_props, "ActiveState").and_then(|s| parse_active(&s)),
        sub_state: text(&unit_props, "SubState"),
        unit_file_state: text(&unit_props, "UnitFileState").and_then(|s| parse_file_state(&s)),
        result: None,
        n_restarts: None,
    };
    // Only services have Result and NRestarts; other unit types answer with an error.
    if let Ok(service) = proxy
        .get_all(InterfaceName::from_static_str_unchecked(SERVICE_INTERFACE))
        .await
    {
        obs.result = text(&service, "Result");
        obs.n_restarts = service
            .get("NRestarts")
            .and_then(|v| u32::try_from(&**v).ok());
    }
    Ok(obs)
}

pub(super) fn observation_from_signal(
    unit: &str,
    signal: &zbus::fdo::PropertiesChanged,
) -> Option<UnitObservation> {
    let args = signal.args().ok()?;
    let changed = args.changed_properties();
    let text = |key: &str| changed.get(key).and_then(|v| String::try_from(v).ok());
    let obs = UnitObservation {
        name: unit.to_string(),
        active_state: text("ActiveState").and_then(|s| parse_active(&s)),
        sub_state: text("SubState"),
        unit_file_state: text("UnitFileState").and_then(|s| parse_file_state(&s)),
        result: text("Result"),
        n_restarts: changed.get("NRestarts").and_then(|v| u32::try_from(v).ok()),
    };
    let anything = obs.active_state.is_some()
        || obs.sub_state.is_some()
        || obs.unit_file_state.is_some()
        || obs.result.is_some()
        || obs.n_restarts.is_some();
    anything.then_some(obs)
}

pub(super) fn parse_active(text: &str) -> Option<ActiveState> {
    ActiveState::parse(text)
}

pub(super) fn parse_file_state(text: &str) -> Option<UnitFileState> {
    UnitFileState::parse(text)
}
