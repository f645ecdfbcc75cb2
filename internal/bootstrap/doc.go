// Package bootstrap gets the Hadron node runtime (hadrond plus the ONNX
// Runtime library that matches the node's architecture) onto a machine, starts
// it under a supervisor, and waits until it answers ready.
//
// Everything goes through a Transport: SSHTransport for cloud nodes (with
// optional bastion, ssh-agent or key authentication, and trust-on-first-use
// host keys) and LocalTransport for the local cloud. The same Install steps
// run over either, in phases (see Phase); a failure is a *PhaseError naming the
// phase, the node, the cause and the last lines of the agent's log.
//
// Layout on the node (PREFIX is /opt/hadron when root or passwordless sudo is
// available, $HOME/.hadron otherwise):
//
//	PREFIX/<version>/bin/hadrond          verified against PREFIX/<version>/SHA256SUMS
//	PREFIX/<version>/lib/libonnxruntime.so.1
//	PREFIX/current -> <version>           switched atomically on upgrade
//	PREFIX/etc/hadrond.hcl                agent config (token inside), mode 0600
//	PREFIX/log/hadrond.log                agent output, tailed into errors
//	PREFIX/run/agent.addr, supervisor.pid, restarts
//	PREFIX/state                          what Install did, read by re-runs and Uninstall
//
// The agent runs as a dedicated system user (useradd --system hadron) when
// the login user is root or has passwordless sudo, otherwise as the login
// user. It is a systemd unit (Restart=always) when PID 1 is systemd and the
// install is privileged; otherwise a small shell supervisor started with
// setsid/nohup restarts it with backoff. The supervised mode does not survive
// a reboot; a re-apply starts it again (Install reports "restarted").
//
// Privileged steps run as root, or through "sudo -n sh -s" for a login user
// with passwordless sudo (ubuntu, ec2-user); uploads are staged as the login
// user, verified with sha256sum -c against SHA256SUMS on the node, then made
// root-owned and moved into place. Bundle files travel as gzip copies when
// the node has gzip (about 2.6 times fewer bytes), over SFTP with pipelined
// writes (or cat over a session when the server has no SFTP subsystem); an
// upgrade copies files whose digest is already on the node instead of
// uploading them. The manifest records the glibc each file needs, checked in
// the os/arch phase.
//
// An upgrade that fails to come up (agent running or ready) is rolled back to
// the previous version, which stays on the node until the next upgrade; the
// error says so.
//
// Status reads an install back (version, running, port) for refreshes; Agent
// (from Result.Agent or NewAgent) calls the agent through the transport.
//
// Files given by URL (for example a CUDA build of ONNX Runtime) are fetched by
// the node itself with curl or wget by default (FetchOnNode): such files are
// large, an in-region bucket is much closer to the node than the user's
// uplink, and the sha256 check on the node means the source need not be trusted.
// FetchViaProvider downloads on the provider's machine and uploads instead,
// for nodes without outbound access.
package bootstrap
