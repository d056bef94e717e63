#![allow(dead_code)]
//! A PostgreSQL cluster of the test's own, in a temporary directory, that the test can stop and
//! start (an outage) without touching the shared server. Needs Debian's PostgreSQL server
//! binaries (scripts/test installs them) and root, to run the server as the postgres user.

use std::path::PathBuf;
use std::process::Command;

pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Cluster {
    pub fn create() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/test installs them)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::Builder::new().prefix("tenure-pg-outage").tempdir().unwrap();
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()));
        let data = dir.path().join("data");
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data));
        let port = super::port::free_port();
        let cluster = Cluster { bin, dir, port };
        cluster.start();
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        run(self.pg_ctl().args(["-o", &options, "-l"]).arg(self.dir.path().join("server.log")).args(["-w", "start"]));
    }

    /// A fast shutdown: connections are cut, as in a crash or a restart by an operator.
    pub fn stop(&self) {
        run(self.pg_ctl().args(["-m", "fast", "-w", "stop"]));
    }

    fn pg_ctl(&self) -> Command {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(self.bin.join("pg_ctl")).arg("-D").arg(self.dir.path().join("data"));
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl().args(["-m", "immediate", "stop"]).output();
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}
