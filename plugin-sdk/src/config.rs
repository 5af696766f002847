//! Typed config parsing from the JSON object the host passes to `create`.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::PluginError;

/// Config type for plugins without options: any key is an error.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Parses `json` into `T`. An empty string means `{}`. Errors name the key
/// path and the problem, e.g. `cap: invalid type: string "x", expected u32`.
pub fn parse_config<T: DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde_json appends " at line L column C"; the host's config is
        // machine-written JSON, so the position is noise to the user.
        let msg = inner.to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_owned(),
            None => msg,
        };
        PluginError::InvalidConfig(if path == "." { msg } else { format!("{path}: {msg}") })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        cap: u32,
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(parse_config::<Cfg>("").unwrap(), Cfg { cap: 0 });
        assert_eq!(parse_config::<Cfg>("{\"cap\":3}").unwrap(), Cfg { cap: 3 });
    }

    #[test]
    fn errors_name_the_key() {
        let PluginError::InvalidConfig(msg) = parse_config::<Cfg>("{\"cap\":\"x\"}").unwrap_err() else {
            panic!("wrong variant")
        };
        assert_eq!(msg, "cap: invalid type: string \"x\", expected u32");
        let PluginError::InvalidConfig(msg) = parse_config::<NoConfig>("{\"capp\":1}").unwrap_err() else {
            panic!("wrong variant")
        };
        assert_eq!(msg, "capp: unknown field `capp`, there are no fields");
    }
}
