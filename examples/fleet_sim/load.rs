//! Reading a fleet file: TOML or JSON by its extension, checked whole.

use modelfleet::config::{BuiltFleet, FleetConfig};

use super::Failure;
use super::locate;

/// A checked fleet file.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The fleet.
    pub(crate) fleet: BuiltFleet,
}

/// The format of a fleet file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Format {
    Json,
    Toml,
}

/// Reads and checks a fleet file; the format follows the extension
/// (`.toml` or `.json`). Every problem is reported as `file:line: place:
/// problem` (the line where the format or the place can be found).
pub(crate) fn load_config(name: &str, text: &str) -> Result<Loaded, Failure> {
    let format = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("toml") => Format::Toml,
        Some("json") => Format::Json,
        _ => {
            return Err(Failure::one(format!(
                "fleet_sim: {name}: unknown config format: the name must end in .toml or .json"
            )));
        }
    };
    // The format's own errors stop parsing; they name the line and column,
    // and the field found there.
    let structural = |offset: Option<usize>, message: &str| {
        Failure::one(locate::parse_error(name, text, format, offset, message))
    };
    let config: FleetConfig = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            let offset = (e.line() > 0).then(|| locate::offset_of(text, e.line(), e.column()));
            structural(offset, message)
        })?,
        Format::Toml => toml::from_str(text)
            .map_err(|e| structural(e.span().map(|s| s.start), e.message().trim_end()))?,
    };
    let fleet = config.build().map_err(|errors| {
        Failure(
            errors
                .iter()
                .map(|e| locate::config_error(name, text, format, e))
                .collect(),
        )
    })?;
    Ok(Loaded { fleet })
}
