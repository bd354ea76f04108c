// Package docs checks the repository's documentation, README.md and docs/*.md, the way a newcomer would trip over
// it: the README stays short, every link and anchor leads somewhere, every configuration shown loads, no command
// shown runs a shell builtin by mistake, and no word from outside the project slips in. The checks are its tests.
package docs
