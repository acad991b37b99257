//! Runs a real nginx (Debian's `nginx` + `libnginx-mod-http-js`) on a free loopback port with a
//! config templated from `docs/nginx/`, in its own temp directory, killed on drop. Also an HTTP
//! GET with arbitrary headers. Include with `#[path = "support/nginx.rs"] mod nginx;` next to
//! `mod support;`.

#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Http, Resp, free_port};

const NGINX_HINT: &str =
    "install the `nginx` package (scripts/test.sh does), or point NGINX_BIN at it";
const NJS_HINT: &str = "install the `libnginx-mod-http-js` package (scripts/test.sh does), \
                        or point NGINX_JS_MODULE at it";

/// The nginx binary: `NGINX_BIN`, else `/usr/sbin/nginx`, else `nginx` on `PATH`.
pub fn nginx_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NGINX_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "nginx not found (NGINX_BIN={}): {NGINX_HINT}",
            bin.display()
        );
        return bin;
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.is_file() {
        return debian;
    }
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| panic!("nginx not found: {NGINX_HINT}"))
}

/// The njs module: `NGINX_JS_MODULE`, else Debian's path.
pub fn js_module() -> PathBuf {
    let module = std::env::var_os("NGINX_JS_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/nginx/modules/ngx_http_js_module.so".into());
    assert!(
        module.is_file(),
        "nginx's njs module {} not found: {NJS_HINT}",
        module.display()
    );
    module
}

/// `docs/nginx/<name>`.
pub fn docs_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/nginx")
        .join(name)
}

/// Replaces each `(placeholder, value)` in `template`; panics if a `__NAME__` placeholder is
/// left, so a placeholder added to the docs cannot go unnoticed.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (placeholder, value) in vars {
        assert!(
            out.contains(placeholder),
            "the template has no {placeholder}"
        );
        out = out.replace(placeholder, value);
    }
    for line in out.lines() {
        let code = line.split('#').next().unwrap_or("");
        if let Some(at) = code.find("__")
            && code[at + 2..].contains("__")
        {
            panic!("unfilled placeholder in {line:?}");
        }
    }
    out
}

/// One nginx process (`daemon off; master_process off`), everything under a temp dir.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx with the http-level file `docs/nginx/<site>`, filling `__LISTEN__` and
    /// `__CACHE_DIR__` itself and the other placeholders from `vars`. Waits (bounded) until
    /// it accepts connections.
    pub fn start(site: &str, vars: &[(&str, &str)]) -> Self {
        let bin = nginx_bin();
        let module = js_module();
        let dir =
            std::env::temp_dir().join(format!("tta-nginx-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("cache")).expect("nginx temp dir");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();

        let template = std::fs::read_to_string(docs_file(site))
            .unwrap_or_else(|e| panic!("reading docs/nginx/{site}: {e}"));
        let listen = addr.to_string();
        let cache = dir.join("cache").display().to_string();
        let mut all: Vec<(&str, &str)> = vec![("__LISTEN__", &listen)];
        if template.contains("__CACHE_DIR__") {
            all.push(("__CACHE_DIR__", &cache));
        }
        all.extend_from_slice(vars);
        std::fs::write(dir.join("site.conf"), render(&template, &all)).expect("site.conf");

        let d = dir.display();
        let main = format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             load_module {module};\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             include {d}/site.conf;\n\
             }}\n",
            module = module.display(),
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main).expect("nginx.conf");

        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}; {NGINX_HINT}", bin.display()));
        let mut nginx = Self { child, dir, addr };
        nginx.wait_listening(Duration::from_secs(10));
        nginx
    }

    fn wait_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling nginx") {
                panic!("nginx exited ({status}); error.log:\n{}", self.error_log());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx not listening on {} within {timeout:?}; error.log:\n{}",
                self.addr,
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://<addr><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The files under the `__CACHE_DIR__` given to the config.
    pub fn cache_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.join("cache"), &mut out);
        out
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "nginx files kept in {}; error.log:\n{}",
                self.dir.display(),
                self.error_log()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `GET url` with exactly these headers (names may be anything HTTP allows, e.g. `x_auth_sub`),
/// bounded by the shared client's timeout.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    Http::new()
        .send_with(http::Method::GET, url, headers, None)
        .await
}
