//! What can go wrong when loading the configuration, with enough detail to fix it:
//! every problem names the key, the bad value (never a secret's) and where it came from.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file was asked for explicitly and is not there.
    #[error("config file {} not found", path.display())]
    NotFound { path: PathBuf },

    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Not JSON, not UTF-8, or not a JSON object. `path` is `None` for JSON given as text.
    #[error("{}: {message}", describe(path))]
    Syntax {
        path: Option<PathBuf>,
        message: String,
    },

    /// Every problem found: those of the layers (environment, duplicate keys, unknown
    /// keys) first, then one per bad key in the order of the keys.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems of an `Invalid` error (empty for the other kinds).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn describe(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!("config file {} is not valid", path.display()),
        None => "config text is not valid".to_string(),
    }
}

fn list(problems: &[Problem]) -> String {
    let mut text = match problems.len() {
        1 => "invalid configuration (1 problem):".to_string(),
        n => format!("invalid configuration ({n} problems):"),
    };
    for problem in problems {
        text.push_str("\n  ");
        text.push_str(&problem.to_string());
    }
    text
}

/// One thing wrong with one key.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The JSON key, or the environment variable when the variable itself is wrong.
    pub key: String,
    /// The offending value as JSON; `None` for secrets, unknown keys and absent values.
    pub value: Option<String>,
    /// Where the value came from: `default`, `file PATH`, `JSON text`,
    /// `environment variable NAME` or `command line`.
    pub source: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if let Some(value) = &self.value {
            write!(f, ", got {value}")?;
        }
        if let Some(source) = &self.source {
            write!(f, " (from {source})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(key: &str, value: Option<&str>, source: Option<&str>) -> Problem {
        Problem {
            key: key.to_string(),
            value: value.map(str::to_string),
            source: source.map(str::to_string),
            message: "must be something else".to_string(),
        }
    }

    #[test]
    fn invalid_lists_every_problem_on_its_own_line() {
        let error = ConfigError::Invalid(vec![
            problem("port", Some("\"abc\""), Some("file config.json")),
            problem("SSL", None, None),
        ]);
        let text = error.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "invalid configuration (2 problems):");
        assert_eq!(
            lines[1].trim(),
            "port: must be something else, got \"abc\" (from file config.json)"
        );
        assert_eq!(lines[2].trim(), "SSL: must be something else");
        assert_eq!(error.problems().len(), 2);
    }

    #[test]
    fn syntax_names_the_file_or_the_text() {
        let file = ConfigError::Syntax {
            path: Some(PathBuf::from("config/config.json")),
            message: "expected `,` at line 3 column 5".to_string(),
        };
        assert!(file.to_string().contains("config/config.json"));
        assert!(file.to_string().contains("line 3 column 5"));
        let text = ConfigError::Syntax {
            path: None,
            message: "x".to_string(),
        };
        assert!(text.to_string().starts_with("config text"));
        assert!(text.problems().is_empty());
    }
}
