//! A small HTTP/1.1 server for download tests: it serves in-memory files on 127.0.0.1, with
//! `Range` support and the misbehaviours of real servers on demand.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the server does with the next request for a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// Send the headers and half of the body, then close the connection.
    CutHalfway,
    /// Answer a `Range` request with the whole file and status 200.
    IgnoreRange,
}

#[derive(Default)]
struct ServerState {
    files: HashMap<String, Vec<u8>>,
    /// Quirks applied once each, to the next request for the path.
    quirks: HashMap<String, Quirk>,
    /// Every request seen: path and `Range` header.
    requests: Vec<(String, Option<String>)>,
}

/// An HTTP/1.1 server on 127.0.0.1 that serves in-memory files with `Range` support, one
/// connection at a time, and closes every connection after one response.
pub struct Server {
    pub addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
}

impl Server {
    pub fn start(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ServerState { files: files.into_iter().collect(), ..Default::default() }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // A client that hangs up early is its own business; serve the next one.
                let _ = serve(stream, &shared);
            }
        });
        Server { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_quirk(&self, path: &str, quirk: Quirk) {
        self.state.lock().unwrap().quirks.insert(path.to_string(), quirk);
    }

    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<ServerState>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_string());
        }
    }
    let (file, quirk) = {
        let mut state = state.lock().unwrap();
        state.requests.push((path.clone(), range.clone()));
        let quirk = state.quirks.remove(&path);
        (state.files.get(&path).cloned(), quirk)
    };
    let mut out = stream;
    let Some(file) = file else {
        return out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let start = match (&range, quirk) {
        (Some(r), q) if q != Some(Quirk::IgnoreRange) => {
            r.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).and_then(|s| s.parse::<usize>().ok())
        }
        _ => None,
    };
    let len = file.len();
    let (head, body) = match start {
        Some(s) if s >= len => (
            format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"),
            &[][..],
        ),
        Some(s) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n",
                len - 1,
                len - s
            ),
            &file[s..],
        ),
        None => (format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"), &file[..]),
    };
    out.write_all(format!("{head}Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n").as_bytes())?;
    if quirk == Some(Quirk::CutHalfway) {
        out.write_all(&body[..body.len() / 2])?;
        out.flush()?;
        return out.shutdown(std::net::Shutdown::Both);
    }
    out.write_all(body)
}

/// A URL on which nothing listens (a port bound, then freed), ending in `path`.
pub fn dead_url(path: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}{path}")
}
