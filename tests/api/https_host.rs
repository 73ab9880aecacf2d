//! A local HTTPS host in front of a wiremock server: customers' file links must be https,
//! and wiremock speaks plain HTTP. The certificate is self-signed for 127.0.0.1; icbridge
//! trusts it through `ICB_MEDIA_CA_FILE`, as it would a private CA's.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use wiremock::MockServer;

pub struct HttpsHost {
    /// `https://127.0.0.1:<port>`
    pub base: String,
    /// The certificate, PEM, for `ICB_MEDIA_CA_FILE`.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl HttpsHost {
    /// Serves `target` over TLS on a port of its own until the test ends.
    pub async fn start(target: &MockServer) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .expect("a self-signed certificate");
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("a server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = *target.address();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("media-ca.pem");
        std::fs::write(&ca_file, certified.cert.pem()).unwrap();
        Self {
            base: format!("https://127.0.0.1:{port}"),
            ca_file,
            _dir: dir,
        }
    }
}
