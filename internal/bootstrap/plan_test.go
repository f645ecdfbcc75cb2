package bootstrap

import (
	"strings"
	"testing"
)

// TestPlan checks the defaults Install resolves from what the probe found.
func TestPlan(t *testing.T) {
	bundle := &Bundle{Version: "1.0.0", Files: []File{
		{Arch: "amd64", Name: AgentFile, SHA256: strings.Repeat("a", 64), Size: 1, Mode: 0o755, GLIBC: "2.34"},
		{Arch: "amd64", Name: ORTFile, SHA256: strings.Repeat("b", 64), Size: 1, Mode: 0o644},
	}}
	tools := func(names ...string) map[string]bool {
		m := map[string]bool{"sha256sum": true, "setpriv": true}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	type want struct {
		privilege, prefix, dataDir, user string
		service                          ServiceMode
	}
	tests := []struct {
		name    string
		f       facts
		o       Options
		want    want
		wantErr string
	}{
		{
			name: "root on a systemd image",
			f:    facts{arch: "amd64", uid: 0, login: "root", home: "/root", pid1: "systemd", glibc: "2.35", has: tools("systemctl")},
			want: want{"root", "/opt/hadron", "/var/lib/hadron", "hadron", ServiceSystemd},
		},
		{
			name: "sudoer on a systemd image",
			f:    facts{arch: "amd64", uid: 1000, login: "ubuntu", home: "/home/ubuntu", pid1: "systemd", sudo: true, glibc: "2.39", has: tools("systemctl")},
			want: want{"sudo", "/opt/hadron", "/var/lib/hadron", "hadron", ServiceSystemd},
		},
		{
			name: "root in a container without systemd",
			f:    facts{arch: "amd64", uid: 0, login: "root", home: "/root", pid1: "bash", glibc: "2.36", has: tools()},
			want: want{"root", "/opt/hadron", "/var/lib/hadron", "hadron", ServiceSupervised},
		},
		{
			name: "plain user: home prefix, login user, supervised even under systemd",
			f:    facts{arch: "amd64", uid: 1001, login: "alice", home: "/home/alice", pid1: "systemd", glibc: "2.36", has: tools("systemctl")},
			want: want{"user", "/home/alice/.hadron", "/home/alice/.hadron/data", "alice", ServiceSupervised},
		},
		{
			name: "forced supervised on systemd, explicit prefix and user",
			f:    facts{arch: "amd64", uid: 0, login: "root", home: "/root", pid1: "systemd", glibc: "2.36", has: tools("systemctl")},
			o:    Options{Service: ServiceSupervised, Prefix: "/srv/hadron", User: "root"},
			want: want{"root", "/srv/hadron", "/var/lib/hadron", "root", ServiceSupervised},
		},
		{
			name:    "plain user cannot run the agent as another user",
			f:       facts{arch: "amd64", uid: 1001, login: "alice", home: "/home/alice", glibc: "2.36", has: tools()},
			o:       Options{User: "hadron"},
			wantErr: `cannot run the agent as "hadron"`,
		},
		{
			name:    "systemd forced where PID 1 is not systemd",
			f:       facts{arch: "amd64", uid: 0, login: "root", home: "/root", pid1: "tini", glibc: "2.36", has: tools("systemctl")},
			o:       Options{Service: ServiceSystemd},
			wantErr: `systemd requested but not usable (PID 1 is "tini"`,
		},
		{
			name:    "old glibc",
			f:       facts{arch: "amd64", uid: 0, login: "root", home: "/root", glibc: "2.26", has: tools()},
			wantErr: "needs glibc 2.34 but the node has glibc 2.26",
		},
		{
			name:    "musl",
			f:       facts{arch: "amd64", uid: 0, login: "root", home: "/root", has: tools()},
			wantErr: "no glibc (musl-based images",
		},
		{
			name:    "no sha256sum",
			f:       facts{arch: "amd64", uid: 0, login: "root", home: "/root", glibc: "2.36", has: map[string]bool{"setpriv": true}},
			wantErr: "sha256sum not found",
		},
		{
			name:    "architecture without files",
			f:       facts{arch: "arm64", uid: 0, login: "root", home: "/root", glibc: "2.36", has: tools()},
			wantErr: "no files for linux/arm64",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Bundle, o.Token = bundle, "t"
			in := &installer{o: o, f: tc.f, res: &Result{}}
			err := in.plan()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("plan err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			l := in.l
			got := want{l.privilege, l.prefix, l.dataDir, l.user, l.service}
			if got != tc.want {
				t.Errorf("plan = %+v, want %+v", got, tc.want)
			}
			if l.service == ServiceSystemd && (l.unitPath != "/etc/systemd/system/hadrond.service" || !strings.Contains(string(l.serviceFile), "Restart=always")) {
				t.Errorf("systemd plan: unit %s\n%s", l.unitPath, l.serviceFile)
			}
			if l.service == ServiceSupervised {
				wantDrop := l.user != tc.f.login
				if got := strings.Contains(string(l.serviceFile), "setpriv"); got != wantDrop {
					t.Errorf("supervisor drops privileges: %t, want %t\n%s", got, wantDrop, l.serviceFile)
				}
			}
		})
	}
}
