//! The integration tests of the `annex` binary, in one test binary: the
//! dependency tree is linked once for all of them rather than once per
//! file. cargo nextest still runs every test in a process of its own, in
//! parallel. Each module is one file of tests, described at its top.

mod branch_cli;
mod cluster_config;
mod cluster_extend;
mod cluster_faults;
mod cluster_interop;
mod cluster_placement;
mod cluster_s3;
mod config_cli;
mod error_wording;
mod forge_serving;
mod gateway_hops;
mod gateway_operations;
mod hostile_branch;
mod initremote_cli;
mod install_deps_script;
mod matchexpression_differential;
mod p2phttp_differential;
mod p2phttp_interop;
mod p2phttp_operations;
mod p2phttp_start;
mod placement_git_annex;
mod proxy_bypass;
mod proxy_directory;
mod proxy_export;
mod proxy_export_external;
mod proxy_export_s3;
mod proxy_external;
mod proxy_faults;
mod proxy_interop;
mod proxy_resume;
mod proxy_s3;
mod proxy_sessions;
mod proxy_splice;
mod remote_cli;
mod remote_http_cli;
mod shell_bad_input;
mod shell_interop;
mod shell_splice;
mod sim_cli;
mod sim_differential;
mod wanted_differential;
