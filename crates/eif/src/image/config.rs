//! The image config's process fields and how they become init's `cmd` and `env` files.

use serde::Deserialize;

use super::ImageError;

/// The subset of the OCI/Docker image config we use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<ProcessConfig>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProcessConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    /// `user`, `uid`, `user:group` or `uid:gid` the process runs as (default root).
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    /// The process's working directory (default `/`).
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The enclave's command, Docker-style: `prefix ‖ Entrypoint ‖ Cmd`.
///
/// nitro-cli uses `Cmd` alone when present (ignoring `Entrypoint`); we follow Docker, so an image
/// behaves in the enclave as under `docker run`. `prefix` is how a supervisor such as
/// `enclave-runtime` becomes the enclave's command and receives the image's command as arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// Prepended to the command (e.g. the injected runtime binary's path).
    pub prefix: Vec<String>,
    /// Replaces the image's `Entrypoint`; as in Docker, it also drops the image's `Cmd`.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries added to the image's `Env`, replacing entries with the same key.
    pub env: Vec<String>,
}

impl Command {
    /// The final argv and environment written to `cmd` and `env`.
    pub fn resolve(&self, image: &ImageConfig) -> Result<(Vec<String>, Vec<String>), ImageError> {
        let process = image.config.clone().unwrap_or_default();
        let (entrypoint, cmd) = match (&self.entrypoint, &self.cmd) {
            (Some(e), c) => (e.clone(), c.clone().unwrap_or_default()),
            (None, Some(c)) => (process.entrypoint.unwrap_or_default(), c.clone()),
            (None, None) => (
                process.entrypoint.unwrap_or_default(),
                process.cmd.unwrap_or_default(),
            ),
        };
        if entrypoint.is_empty() && cmd.is_empty() {
            return Err(ImageError::NoCommand);
        }
        let argv: Vec<String> = self
            .prefix
            .iter()
            .chain(&entrypoint)
            .chain(&cmd)
            .cloned()
            .collect();
        let mut env = process.env.unwrap_or_default();
        for e in &self.env {
            let key = e.split('=').next().unwrap_or(e);
            match env.iter_mut().find(|x| x.split('=').next() == Some(key)) {
                Some(slot) => slot.clone_from(e),
                None => env.push(e.clone()),
            }
        }
        if let Some(bad) = argv.iter().chain(&env).find(|s| s.contains('\n')) {
            return Err(ImageError::Newline(bad.clone()));
        }
        Ok((argv, env))
    }
}

/// One `\n`-terminated line per item, as nitro-cli writes `cmd` and `env`.
pub(crate) fn lines(items: &[String]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|s| s.bytes().chain([b'\n']))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        let v = |o: Option<&[&str]>| o.map(|s| s.iter().map(|x| x.to_string()).collect());
        ImageConfig {
            config: Some(ProcessConfig {
                entrypoint: v(entrypoint),
                cmd: v(cmd),
                env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn docker_semantics() {
        let img = image(Some(&["/bin/app"]), Some(&["--flag"]));
        let base = Command {
            prefix: vec!["/rt".into()],
            env: vec!["A=2".into(), "B=3".into()],
            ..Default::default()
        };
        let (argv, env) = base.resolve(&img).unwrap();
        assert_eq!(argv, ["/rt", "/bin/app", "--flag"]);
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
        let c = Command {
            cmd: Some(vec!["x".into()]),
            ..Default::default()
        };
        assert_eq!(c.resolve(&img).unwrap().0, ["/bin/app", "x"]);
        let e = Command {
            entrypoint: Some(vec!["/sh".into()]),
            ..Default::default()
        };
        assert_eq!(e.resolve(&img).unwrap().0, ["/sh"]);
        assert!(matches!(
            Command::default().resolve(&image(None, None)),
            Err(ImageError::NoCommand)
        ));
        let nl = Command {
            cmd: Some(vec!["a\nb".into()]),
            ..Default::default()
        };
        assert!(matches!(nl.resolve(&img), Err(ImageError::Newline(_))));
        assert_eq!(lines(&["a".into(), "b".into()]), b"a\nb\n");
    }
}
