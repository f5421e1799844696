package gitserver

import (
	"regexp"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// maxEnvRequests caps env requests per session; only GIT_PROTOCOL is kept.
const maxEnvRequests = 16

var gitProtocolRE = regexp.MustCompile(`^version=[0-2]$`)

// filteredSession is the session channel handler with the requests skiff
// does not serve refused before gliderlabs/ssh sees them: agent and X11
// forwarding, and every env request but a well-formed GIT_PROTOCOL (which
// selects git's wire protocol v2), up to a small count.
func filteredSession(srv *ssh.Server, conn *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	ssh.DefaultSessionHandler(srv, conn, filteringChannel{newChan}, ctx)
}

type filteringChannel struct{ gossh.NewChannel }

func (f filteringChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := f.NewChannel.Accept()
	if err != nil {
		return ch, reqs, err
	}
	out := make(chan *gossh.Request)
	go func() {
		defer close(out)
		envs := 0
		for req := range reqs {
			switch req.Type {
			case "env":
				var kv struct{ Key, Value string }
				if gossh.Unmarshal(req.Payload, &kv) != nil || kv.Key != "GIT_PROTOCOL" || !gitProtocolRE.MatchString(kv.Value) || envs >= maxEnvRequests {
					reply(req, false)
					continue
				}
				envs++
			case "auth-agent-req@openssh.com", "x11-req":
				reply(req, false)
				continue
			}
			out <- req
		}
	}()
	return ch, out, nil
}

func reply(req *gossh.Request, ok bool) {
	if req.WantReply {
		_ = req.Reply(ok, nil) // a client that went away
	}
}
