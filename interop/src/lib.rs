//! Interoperability tests live in tests/; this library holds what their child processes share.

pub mod child {
    //! Examples run as child processes: built with the cargo running the test, killed if the
    //! test fails, their output read line by line.

    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc::{self, Receiver};
    use std::thread;
    use std::time::Instant;

    /// Kills the child when the test fails before it exits.
    pub struct Guard(pub Child);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Builds `example` of `package` once with the cargo running this test (`features` as
    /// cargo's `--features` list, empty for none) and returns its executable.
    pub fn build_example(package: &str, example: &str, features: &str) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut args = vec!["build", "-p", package, "--example", example, "--message-format=json"];
        if !features.is_empty() {
            args.extend(["--features", features]);
        }
        let output = Command::new(env!("CARGO"))
            .args(&args)
            .current_dir(root)
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(output.status.success(), "cargo build --example {example} failed");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let name = format!("\"name\":\"{example}\"");
        let line = stdout
            .lines()
            .find(|l| l.contains(&name) && l.contains("\"executable\":\""))
            .unwrap_or_else(|| panic!("cargo reported no {example} executable"));
        let start = line.find("\"executable\":\"").unwrap() + "\"executable\":\"".len();
        let end = start + line[start..].find('"').unwrap();
        PathBuf::from(&line[start..end])
    }

    /// Panics with the install command unless `python3` can import `websockets`.
    pub fn require_python_websockets() {
        let status = Command::new("python3")
            .args(["-c", "import websockets"])
            .status()
            .expect("python3 is needed for this test");
        assert!(status.success(), "python3 needs the websockets package: python3 -m pip install websockets");
    }

    /// Starts `python3` on `script` (under this crate's `tests/`) with `args`: the child and
    /// the lines of its stdout (its stderr goes to the test's).
    pub fn python_script(script: &str, args: &[String]) -> (Guard, Receiver<String>) {
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3");
        let out = lines(child.stdout.take().unwrap());
        (Guard(child), out)
    }

    /// Starts the built `echo_server` at `exe` on a free port, with descriptors for thousands
    /// of connections (a default soft limit is 1024): the child, its log lines (stderr) and
    /// its URL, once it listens.
    pub fn start_echo_server(exe: &Path) -> (Guard, Receiver<String>, String) {
        let mut child = Command::new("sh")
            .args(["-c", "ulimit -n 8192 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" \"$@\""])
            .arg(exe)
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start echo_server");
        let log = lines(child.stderr.take().unwrap());
        let child = Guard(child);
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let listening = wait_for(&log, "echo server listening on ", deadline, &mut Vec::new());
        (child, log, ws_url(&listening) + "/")
    }

    /// The lines of a child's pipe, read on a thread.
    pub fn lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// The first line containing `needle` before `deadline`; the others go to `seen`.
    pub fn wait_for(
        rx: &Receiver<String>,
        needle: &str,
        deadline: Instant,
        seen: &mut Vec<String>,
    ) -> String {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("no line containing {needle:?} ({e}); seen: {seen:?}"),
            }
        }
    }

    /// The message of a log line of the examples (`<time>  <LEVEL> <message>`, as
    /// tracing-subscriber writes it), or the whole line if it has no such prefix.
    pub fn log_message(line: &str) -> &str {
        let mut rest = line.trim_start();
        for _ in 0..2 {
            match rest.split_once(char::is_whitespace) {
                Some((_, tail)) => rest = tail.trim_start(),
                None => return line,
            }
        }
        rest
    }

    /// The `ws://` address in a line (the examples' "listening on ws://HOST:PORT").
    pub fn ws_url(line: &str) -> String {
        let start = line.find("ws://").unwrap_or_else(|| panic!("no ws:// address in {line:?}"));
        line[start..].split_whitespace().next().unwrap().to_string()
    }
}
