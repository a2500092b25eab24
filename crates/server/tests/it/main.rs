//! Server tests: the router driven without a socket, and end-to-end over loopback.

mod api;
mod auth;
mod cloudflare;
mod config;
mod e2e;
mod files;
mod fuzz;
mod rooms_ws;
mod support;
