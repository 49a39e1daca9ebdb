//! Certificates for TLS tests: two private CAs, server and client certificates, made with
//! `openssl` at test time.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::free_port;

/// A directory of certificates made by [`make_certificates`]; removed when dropped.
pub struct Certificates {
    /// Where the files are (an absolute path, as `redis-server` wants).
    pub dir: PathBuf,
}

impl Certificates {
    /// Makes the certificates in a new temp dir.
    pub fn make() -> Certificates {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("redis-cached-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        make_certificates(&dir);
        Certificates { dir }
    }

    /// The contents of one of the files, e.g. `ca.pem`.
    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).expect("read a certificate")
    }

    /// The absolute path of one of the files, e.g. `client.key`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two CAs; a server certificate for 127.0.0.1 (`server.pem`), the same expired since
/// yesterday (`expired.pem`) and a client certificate (`client.pem`), each signed by the
/// first CA, with `openssl`.
pub fn make_certificates(dir: &Path) {
    let new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for (ca, name) in [("ca", "redis-cached test CA"), ("other-ca", "another CA")] {
        let (key, pem, subject) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN={name}"));
        openssl(
            dir,
            &[
                &["req", "-x509"],
                &new_key[..],
                &["-keyout", &key, "-out", &pem, "-days", "1", "-subj", &subject],
            ]
            .concat(),
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            &["req"],
            &new_key[..],
            &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .expect("write client.ext");
    openssl(
        dir,
        &[
            &["req"],
            &new_key[..],
            &[
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
                "-subj",
                "/CN=redis-cached client",
            ],
        ]
        .concat(),
    );
    // `-days -1`: not valid after yesterday.
    for (csr, pem, days, ext) in [
        ("server.csr", "server.pem", "1", "server.ext"),
        ("server.csr", "expired.pem", "-1", "server.ext"),
        ("client.csr", "client.pem", "1", "client.ext"),
    ] {
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                pem,
                "-days",
                days,
                "-extfile",
                ext,
            ],
        );
    }
}

/// Runs `openssl` with `args` in `dir`; panics with its stderr if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `openssl` ({e}); the TLS tests need it: `apt-get install -y openssl`"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
