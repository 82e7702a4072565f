// Package logfile stores a task's output streams (stdout, stderr) as
// size-rotated files in the task's sandbox and reads them back by cursor.
//
// It is the foundation of issue 15's task logs. One Writer per stream runs
// in the process that owns the task's stdio (the executor's supervisor,
// which outlives the agent, so no line is lost while the agent restarts).
// Readers (the agent serving dcosctl logs, tests, operators with a shell)
// open the same directory independently: the files are the only shared
// state, so a Reader works across restarts of the Writer's process and of
// its own.
//
// On disk a stream NAME is a sequence of generations NAME.000001,
// NAME.000002, … (at least six digits, zero padded; numbers past 999999
// simply grow). The highest generation is the live one; every lower one is
// complete and never written again. NAME itself is a hard link to the live
// generation, re-pointed atomically at each rotation, so `cat sandbox/stdout`
// shows the live file. At most Options.MaxFiles generations are kept.
//
// A Cursor (generation, offset) names a byte of the stream; it survives
// rotation, so a follower never loses or repeats a line, and when the cap
// has deleted what a cursor points at the Reader says so (ErrTruncated)
// instead of skipping silently.
//
// It is not for shipping logs off the node, for structured (JSON, key=value)
// logging, nor for the daemons' own logs.
package logfile
