//! The demo (placeholder until the local mail stack lands).
pub async fn run(_config: Option<std::path::PathBuf>, _once: bool) -> Result<(), String> {
    Err("the demo needs the local mail stack".into())
}
