//! The real `taskwire` binary as a child process, for tests about what only a process can do:
//! be killed with SIGKILL, run beside other processes, refuse to start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running taskwire process; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Starts the binary on a free port with `env` on top of an environment without any
    /// taskwire setting (so the defaults users get, whatever the caller's shell exports) and
    /// waits until it says where it listens.
    pub async fn start(db_url: &str, env: Vec<(&'static str, String)>) -> Server {
        Server::start_with_open_files(db_url, env, None).await
    }

    /// [`Server::start`] with the open-file limit (soft and hard) lowered to `open_files`, as
    /// a host with a small `ulimit -n` would start it.
    pub async fn start_with_open_files(
        db_url: &str,
        env: Vec<(&'static str, String)>,
        open_files: Option<u64>,
    ) -> Server {
        let db_url = db_url.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
            for name in taskwire::config::setting_env_names() {
                cmd.env_remove(name);
            }
            cmd.env("DATABASE_URL", db_url)
                .env("HOST", "127.0.0.1")
                .env("PORT", "0")
                .env("LOG_LEVEL", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            for (name, value) in env {
                cmd.env(name, value);
            }
            if let Some(n) = open_files {
                use std::os::unix::process::CommandExt;
                let limit = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                // SAFETY: setrlimit is async-signal-safe and touches only the child.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                            Ok(())
                        } else {
                            Err(std::io::Error::last_os_error())
                        }
                    });
                }
            }
            let mut child = cmd.spawn().expect("taskwire starts");
            let stdout = child.stdout.take().expect("stdout is piped");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(base) = line.strip_prefix("taskwire listening on ") {
                        let _ = tx.send(base.to_owned());
                    }
                }
            });
            let base = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("taskwire prints the address it listens on");
            Server { child, base }
        })
        .await
        .expect("the start-up thread does not panic")
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("the killed process is reaped");
    }

    /// SIGTERM, then waits up to `limit` for the process to exit.
    pub async fn terminate(mut self, limit: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited on") {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "taskwire did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
