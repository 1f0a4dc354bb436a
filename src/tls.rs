//! SHIM — replaced by the real tls module on merge.
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls;
#[derive(Debug, thiserror::Error)]
#[error("tls")]
pub struct TlsError;
pub fn client_config(_extra_ca_pem: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    todo!()
}
