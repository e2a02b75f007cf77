//! The example plugin as its own program: `example-plugin [mqtt://host:port]`
//! (default `mqtt://127.0.0.1:1883`). Stops cleanly on Ctrl-C / SIGTERM.

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883".to_string());
    if let Err(e) = hcore_client::run_remote(hcore_example_plugin::ExamplePlugin::new(), &url).await
    {
        eprintln!("example-plugin: {e}");
        std::process::exit(1);
    }
}
