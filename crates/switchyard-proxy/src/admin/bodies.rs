//! The JSON bodies of the admin API's control calls, as read from requests.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::control::SplitOptions;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SwitchBody {
    pub(super) to: String,
    #[serde(default)]
    pub(super) force: bool,
    /// A ramp over this long (`"60s"`), instead of a switch at once.
    #[serde(default)]
    pub(super) ramp: Option<String>,
    /// The service, for the `/switch` shorthand (the path names it otherwise).
    #[serde(default)]
    pub(super) service: Option<String>,
}

/// `PUT /mirror`: the same keys as `[services.NAME.mirror]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MirrorBody {
    pub(super) to: String,
    #[serde(default)]
    pub(super) percent: Option<u32>,
    #[serde(default)]
    pub(super) methods: Option<Vec<String>>,
    #[serde(default)]
    pub(super) max_in_flight: Option<u32>,
    /// The service, for the `/mirror` shorthand.
    #[serde(default)]
    pub(super) service: Option<String>,
}

/// `DELETE /mirror`: nothing, or the service for the shorthand.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MirrorOff {
    #[serde(default)]
    pub(super) service: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackBody {
    #[serde(default)]
    pub(super) force: bool,
    /// The service, for the `/rollback` shorthand (the path names it otherwise).
    #[serde(default)]
    pub(super) service: Option<String>,
}

/// A split body: pool weights (`{"blue": 10, "green": 90}`), with an optional `"force": true`
/// and, for the `/split` shorthand, an optional `"service": "NAME"`.
/// A split body, read: the weights, `force`, and the service it names.
pub(super) type SplitRequest = (BTreeMap<String, u32>, SplitOptions, Option<String>);

pub(super) fn split_body(
    fields: BTreeMap<String, serde_json::Value>,
) -> Result<SplitRequest, String> {
    let mut weights = BTreeMap::new();
    let mut options = SplitOptions::default();
    let mut service = None;
    for (key, value) in fields {
        if key == "service" {
            service = Some(
                value
                    .as_str()
                    .ok_or("`service` must be a service name".to_string())?
                    .to_string(),
            );
            continue;
        }
        if key == "force" || key == "sticky" {
            let flag = value
                .as_bool()
                .ok_or(format!("`{key}` must be true or false"))?;
            if key == "force" {
                options.force = flag;
            } else {
                options.sticky = flag;
            }
            continue;
        }
        let weight = value
            .as_u64()
            .and_then(|w| u32::try_from(w).ok())
            .ok_or(format!("the weight of pool `{key}` must be a whole number"))?;
        weights.insert(key, weight);
    }
    Ok((weights, options, service))
}
