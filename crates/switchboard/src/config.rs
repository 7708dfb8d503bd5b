//! Configuration from a file and from `*_FILE` variables, under the flags
//! and the environment: precedence **flag > environment > file**.
//!
//! One TOML file configures the whole stack (`--config`, or
//! `SWITCHBOARD_CONFIG`). Its keys are the `SWITCHBOARD_*` variable names
//! without the prefix, lowercased (`SWITCHBOARD_EDGE_LISTEN` →
//! `edge_listen`); lists are arrays. Each subcommand takes the keys it
//! knows; a key that no subcommand knows is refused (a typo must not pass
//! silently).
//!
//! Secrets come as files, as Kubernetes mounts Secrets: any variable `X`
//! may be given as `X_FILE` (environment) or `x_file` (config file), the
//! path of a file holding the value (a trailing newline is dropped). `X`
//! and `X_FILE` together are refused.
//!
//! How: the file's values (and `*_FILE` contents) become the arguments'
//! defaults before parsing, so clap's own order (flag, then environment,
//! then default) is the precedence above.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    path::{Path, PathBuf},
};

use clap::{Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// The variable naming the config file.
pub const CONFIG_ENV: &str = "SWITCHBOARD_CONFIG";
const PREFIX: &str = "SWITCHBOARD_";

/// A configuration that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0}: {1}")]
    File(PathBuf, String),
    #[error(
        "config file {0}: unknown key {1:?} (keys are SWITCHBOARD_* variable names without the prefix, lowercased)"
    )]
    UnknownKey(PathBuf, String),
    #[error("{0} and {0}_FILE are both set: give one")]
    Both(String),
    #[error("{0}: cannot read {1}: {2}")]
    Secret(String, PathBuf, std::io::Error),
}

/// Where a value came from, for `--check-config`: the files it reads.
#[derive(Debug, Default)]
pub struct Sources {
    pub files: Vec<PathBuf>,
}

/// Every environment variable an argument of `cmd` (or its subcommands)
/// reads.
fn env_names(cmd: &Command, names: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(env) = arg.get_env() {
            names.insert(env.to_string_lossy().into_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        env_names(sub, names);
    }
}

/// The value of a TOML entry as an argument value (arrays joined by ',').
fn text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => {
            let items: Option<Vec<String>> = items.iter().map(text).collect();
            Some(items?.join(","))
        }
        _ => None,
    }
}

/// Reads a secret file: its contents without the trailing newline.
fn read_secret(name: &str, path: &Path) -> Result<String, ConfigError> {
    let value = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Secret(name.to_owned(), path.to_owned(), e))?;
    Ok(value.trim_end_matches(['\n', '\r']).to_owned())
}

/// A value that parses where a secret is expected, for `--check-config`
/// (which must not need the secret files, absent where the manifests are
/// checked).
fn placeholder(name: &str) -> String {
    if name.contains("REDIS") {
        "redis://placeholder:6379".into()
    } else {
        format!("placeholder:{}", "x".repeat(32))
    }
}

/// The defaults the file and the `*_FILE` variables give, by variable
/// name. `env` is the process environment; `read` reads secret files
/// (false: record them, use placeholders).
fn defaults(
    names: &BTreeSet<String>,
    config: Option<&Path>,
    env: &BTreeMap<String, String>,
    read: bool,
    sources: &mut Sources,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut values = BTreeMap::new();
    let mut secret = |name: &str, path: PathBuf, values: &mut BTreeMap<String, String>| {
        let value = if read {
            read_secret(name, &path)?
        } else {
            placeholder(name)
        };
        sources.files.push(path);
        values.insert(name.to_owned(), value);
        Ok::<(), ConfigError>(())
    };
    if let Some(path) = config {
        let raw = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File(path.to_owned(), e.to_string()))?;
        let table: toml::Table = raw
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File(path.to_owned(), e.to_string()))?;
        for (key, value) in &table {
            let name = format!("{PREFIX}{}", key.to_ascii_uppercase());
            let unknown = || ConfigError::UnknownKey(path.to_owned(), key.clone());
            if let Some(base) = name.strip_suffix("_FILE").filter(|b| names.contains(*b)) {
                let file = text(value).ok_or_else(unknown)?;
                if table.contains_key(&key[..key.len() - 5]) {
                    return Err(ConfigError::Both(base.to_owned()));
                }
                secret(base, PathBuf::from(file), &mut values)?;
            } else if names.contains(&name) {
                values.insert(name, text(value).ok_or_else(unknown)?);
            } else {
                return Err(unknown());
            }
        }
    }
    for name in names {
        let Some(path) = env.get(&format!("{name}_FILE")) else {
            continue;
        };
        if env.contains_key(name) {
            return Err(ConfigError::Both(name.clone()));
        }
        secret(name, PathBuf::from(path), &mut values)?;
    }
    Ok(values)
}

/// `cmd` with `defaults` as its arguments' defaults, recursively.
fn with_defaults(cmd: Command, defaults: &BTreeMap<String, String>) -> Command {
    let cmd = cmd.mut_args(|arg| {
        let Some(value) = arg
            .get_env()
            .and_then(|env| defaults.get(&*env.to_string_lossy()))
        else {
            return arg;
        };
        if !arg.get_action().takes_values() {
            // A flag (`allow_plaintext = true`): its default is its value.
            return arg.default_value(value.clone());
        }
        let arg = arg.hide_default_value(true);
        match arg.get_value_delimiter() {
            Some(delimiter) => {
                let values: Vec<String> = value.split(delimiter).map(str::to_owned).collect();
                arg.default_values(values)
            }
            None => arg.default_value(value.clone()),
        }
    });
    cmd.mut_subcommands(|sub| with_defaults(sub, defaults))
}

/// The config file named by `--config FILE`/`--config=FILE` in `args`, or
/// by [`CONFIG_ENV`].
fn config_path(args: &[OsString], env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.into());
        }
    }
    env.get(CONFIG_ENV).map(PathBuf::from)
}

/// Parses the command line over the environment, the config file and the
/// `*_FILE` variables. `--check-config` does not read the secret files
/// (it lists them in `Sources`).
pub fn parse_from(
    args: Vec<OsString>,
    env: &BTreeMap<String, String>,
) -> Result<(Cli, Sources), Box<dyn std::error::Error + Send + Sync>> {
    let cmd = Cli::command();
    let mut names = BTreeSet::new();
    env_names(&cmd, &mut names);
    names.remove(CONFIG_ENV);
    let checking = args.iter().any(|a| a == "--check-config");
    let mut sources = Sources::default();
    let config = config_path(&args, env);
    let defaults = defaults(&names, config.as_deref(), env, !checking, &mut sources)?;
    if let Some(config) = config {
        sources.files.insert(0, config);
    }
    let matches = with_defaults(cmd, &defaults).try_get_matches_from(args)?;
    Ok((Cli::from_arg_matches(&matches)?, sources))
}

/// [`parse_from`] over this process's arguments and environment; prints
/// clap's help, version or usage error and exits as clap does.
pub fn parse() -> Result<(Cli, Sources), Box<dyn std::error::Error + Send + Sync>> {
    let env = std::env::vars().collect();
    match parse_from(std::env::args_os().collect(), &env) {
        Err(err) => match err.downcast::<clap::Error>() {
            Ok(clap_err) => clap_err.exit(),
            Err(err) => Err(err),
        },
        ok => ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command as Sub;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("switchboard")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sb-config-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn edge(cli: Cli) -> crate::cli::EdgeArgs {
        match cli.command {
            Sub::Edge(args) => args,
            other => panic!("not edge: {other:?}"),
        }
    }

    #[test]
    fn a_flag_beats_the_file_which_fills_the_rest() {
        let dir = dir();
        let file = dir.join("switchboard.toml");
        std::fs::write(
            &file,
            "edge_listen = \"0.0.0.0:7000\"\nallow_plaintext = true\nallowed_origins = [\"https://a.example\", \"https://b.example\"]\ndrain_seconds = 30\nsignal_listen = \"0.0.0.0:50052\"\n",
        )
        .expect("write");
        let path = file.to_str().expect("utf-8");
        let from_file = edge(
            parse_from(args(&["--config", path, "edge"]), &env(&[]))
                .expect("parse")
                .0,
        );
        assert_eq!(from_file.listen.port(), 7000);
        assert!(from_file.common.allow_plaintext, "a flag from the file");
        assert_eq!(from_file.common.drain_seconds, 30);
        assert_eq!(
            from_file.common.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        // (Environment over file: clap reads the process environment;
        // tests/cli.rs checks it with the binary.)
        let e = env(&[(CONFIG_ENV, path)]);
        let from_flag = edge(
            parse_from(args(&["edge", "--listen", "0.0.0.0:7002"]), &e)
                .expect("parse")
                .0,
        );
        assert_eq!(from_flag.common.drain_seconds, 30, "the rest from the file");
        assert_eq!(from_flag.listen.port(), 7002, "flag beats file");
    }

    #[test]
    fn unknown_keys_and_bad_files_are_refused() {
        let dir = dir();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "edge_lisen = \"0.0.0.0:7000\"\n").expect("write");
        let path = file.to_str().expect("utf-8");
        let err = parse_from(args(&["--config", path, "edge"]), &env(&[])).expect_err("typo");
        assert!(
            err.to_string().contains("unknown key \"edge_lisen\""),
            "{err}"
        );
        std::fs::write(&file, "edge_listen = \n").expect("write");
        let err = parse_from(args(&["--config", path, "edge"]), &env(&[])).expect_err("syntax");
        assert!(err.to_string().contains("bad.toml"), "{err}");
        let missing = dir.join("missing.toml");
        let err = parse_from(
            args(&["--config", missing.to_str().expect("utf-8"), "edge"]),
            &env(&[]),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }

    #[test]
    fn secrets_come_from_files_and_never_twice() {
        let dir = dir();
        let secret = dir.join("service-key");
        std::fs::write(&secret, format!("edge:{}\n", "s".repeat(32))).expect("write");
        let secret = secret.to_str().expect("utf-8");
        let e = env(&[("SWITCHBOARD_SERVICE_KEY_FILE", secret)]);
        let parsed = edge(parse_from(args(&["edge"]), &e).expect("parse").0);
        let key = parsed.common.service_key.expect("from the file");
        assert_eq!(key.key, "edge");
        assert_eq!(key.secret(), "s".repeat(32), "trailing newline dropped");

        let both = env(&[
            ("SWITCHBOARD_SERVICE_KEY_FILE", secret),
            ("SWITCHBOARD_SERVICE_KEY", "edge:x"),
        ]);
        let err = parse_from(args(&["edge"]), &both).expect_err("both");
        assert!(err.to_string().contains("both set"), "{err}");

        let file = dir.join("switchboard.toml");
        std::fs::write(&file, format!("service_key_file = \"{secret}\"\n")).expect("write");
        let parsed = edge(
            parse_from(
                args(&["--config", file.to_str().expect("utf-8"), "edge"]),
                &env(&[]),
            )
            .expect("parse")
            .0,
        );
        assert_eq!(
            parsed.common.service_key.expect("from the file").key,
            "edge"
        );

        let gone = env(&[("SWITCHBOARD_SERVICE_KEY_FILE", "/nonexistent/key")]);
        let err = parse_from(args(&["edge"]), &gone).expect_err("unreadable");
        assert!(err.to_string().contains("/nonexistent/key"), "{err}");
        // --check-config lists it instead of reading it.
        let (_, sources) = parse_from(args(&["--check-config", "edge"]), &gone).expect("not read");
        assert_eq!(sources.files, [PathBuf::from("/nonexistent/key")]);
    }
}
