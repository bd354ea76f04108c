package runner

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStopSendsSIGTERMThenKills(t *testing.T) {
	tests := []struct {
		name   string
		script string
		killed bool
	}{
		{"app that exits on SIGTERM", `trap 'exit 0' TERM; while :; do sleep 0.05; done`, false},
		{"app that ignores SIGTERM", `trap '' TERM; while :; do sleep 0.05; done`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Start(Spec{Name: "test", Command: []string{"sh", "-c", tt.script}})
			require.NoError(t, err)
			time.Sleep(100 * time.Millisecond) // let the shell install its trap
			err = a.Stop(300 * time.Millisecond)
			if tt.killed {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "killed")
			} else {
				assert.NoError(t, err)
			}
			<-a.Done()
		})
	}
}

func TestStartGivesThePlatformEnvironment(t *testing.T) {
	t.Setenv("DATABRICKS_TOKEN", "developer-token-must-not-leak")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	out := &strings.Builder{}
	a, err := Start(Spec{Name: "env", Port: port, Env: []string{"DATABRICKS_APP_NAME=api-app"}, Stdout: out,
		Command: []string{"sh", "-c", `echo "$0 $DATABRICKS_APP_NAME $DATABRICKS_APP_PORT token=$DATABRICKS_TOKEN"`, "$DATABRICKS_APP_PORT"}})
	require.NoError(t, err)
	<-a.Done()
	require.NoError(t, a.Err())
	p := strconv.Itoa(port)
	assert.Equal(t, p+" api-app "+p+" token=\n", out.String())
}

func TestWaitListeningReportsAnEarlyExit(t *testing.T) {
	a, err := Start(Spec{Name: "quitter", Command: []string{"sh", "-c", "exit 3"}, Stderr: os.Stderr})
	require.NoError(t, err)
	err = a.WaitListening(t.Context(), "127.0.0.1:1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited before listening")

	_, err = Start(Spec{Name: "empty"})
	assert.Error(t, err)
}
