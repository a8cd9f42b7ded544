// Package loopback is the key-value store over a host directory: the
// "loopback" implementation of mirage-kv-unix (seed
// mirage-kv-unix-loopback.txt) with tarstore's semantics (SPEC §2–3, the
// table in package kv), not mirage-kv-unix's own behaviour where the two
// differ. It is what `tarstore import` and `export` read and write, and it
// passes the kv/kvtest conformance suite.
//
// # Layout
//
// A key is the path of the same name below the root directory: a value is a
// regular file holding its bytes, a dictionary is a directory. The root is
// always a dictionary. A directory is a dictionary whether or not it holds
// anything, so an empty directory made by hand is an empty dictionary; the
// store itself never leaves one behind: a write creates the directories a
// key needs, and Remove and Rename take away the parent directories they
// leave empty, up to (not including) the root. Files and directories made by
// hand in the root are part of the store like any other.
//
// The last-modified time of a value is the modification time of its file,
// with the nanosecond resolution of the file system. Writes stamp it from
// the store's clock.PClock (Allocate with an explicit time uses that time);
// Rename keeps it. A dictionary's is the latest of the values directly in
// it, the Unix epoch when it has none (see package kv).
//
// # What the store does not expose
//
// Only regular files and directories are part of the store. Symbolic links
// (wherever they point: inside the root, outside it, absolute, dangling),
// FIFOs, sockets and device nodes are not exposed: they are absent from List
// and from digests, Exists reports None, and reads fail with not_found. A
// symbolic link is never followed, so a key whose path goes through one
// (a symlink to a directory, inside the root or not) is not found either;
// nothing outside the root can be reached through the store. Also not
// exposed: names whose key would break the key limits (kv.MaxKeyLen), and
// the staging directory described below.
//
// A write whose key meets such an entry replaces it, as `tar -x` does
// without --keep-directory-symlink: the entry itself is unlinked (never what
// a symlink points to) and the value, or the directory the key needs, takes
// its place. Removing a dictionary removes its directory with everything in
// it, unexposed entries included. Removing the root removes every exposed
// entry of the root and leaves unexposed ones; likewise a parent directory
// that still holds an unexposed entry is not empty and stays, as an empty
// dictionary.
//
// Paths are resolved through an os.Root opened on the root directory, so no
// operation can reach outside it, even if the directory changes under the
// store. Before every access the store also checks each component of the
// key's path with lstat, so that symbolic links and special files are not
// followed; if the directory is changed by hand while the store is open,
// that check can race with the change, and the worst outcome is that an
// operation acts on another file inside the root. Mount points inside the
// root are not supported (renames across them fail with storage_error).
// Hard links made by hand are separate values that share their bytes:
// SetPartial on one is seen in the other, Set on one replaces only that one.
//
// # Staging, locking and recovery
//
// The name ".tarstore-staging" at the root is reserved: a key whose first
// segment is that name fails with invalid_key. The directory of that name
// holds the store's work in progress — temporary files of writes in flight,
// trees being deleted, and the intent record of a write that takes several
// renames. New creates it, takes an exclusive flock(2) on the root directory
// (a second store on the same directory, in this process or another, fails
// with ErrInUse), rolls forward the write whose intent record it finds (see
// below), and deletes everything else it holds: the leftovers of a crash
// never become visible. Close removes the directory when it is empty.
//
// # Durability and atomicity
//
// Every write returns only when it is durable: the files and every
// directory whose entries it changed have been fsynced. The orders, which
// are what make the guarantees below hold, are:
//
//   - Set, SetFrom, Allocate, and SetPartial on a missing key write a new
//     file in the staging directory (Allocate reserves its space with
//     fallocate(2), or leaves it sparse where the file system cannot), set
//     its mtime, fsync it, and then rename it into place and fsync the
//     parent directory. The data is staged before the store's write lock is
//     taken, so a slow SetFrom stream blocks neither readers nor other
//     writers. When parent directories are missing, they are built inside
//     the staging directory around the new file, fsynced, and the topmost
//     one is renamed into place: one rename makes the value and all its new
//     parents appear together. A value is replaced by rename(2), which is
//     atomic.
//   - Remove renames the key's file or directory into the staging directory
//     and fsyncs its parent, then deletes it. The parents that the removal
//     empties are taken in the same rename: it moves the highest ancestor
//     that holds nothing but the path to the key. A crash after the rename
//     leaves a tree in staging, which the next New deletes.
//   - Writes that cannot be a single rename — Set (SetFrom, Allocate) over
//     a dictionary; a Rename that replaces a dictionary, puts a dictionary
//     where a value was, needs missing parents or empties the source's
//     directory; Remove of the root — first write an intent record (the
//     paths involved) to the staging directory and fsync it and the
//     directory. Then the source is moved into the staging directory, what
//     the destination held is moved aside into the staging directory, the
//     source is renamed into place, emptied source parents are removed, and
//     every directory touched is fsynced; only then is the intent record
//     unlinked (and the staging directory fsynced), and the old data
//     deleted. Each step can be recognised from the file system, so after a
//     crash New completes the write from wherever it stopped (it is rolled
//     forward, never back).
//   - SetPartial on an existing value writes in place, stamps the mtime and
//     fsyncs the file (fsync rather than fdatasync, so that the new mtime is
//     durable too).
//
// Guarantees: after a crash and the next New, every acknowledged write is
// present; every unacknowledged Set, SetFrom, Allocate, Remove and Rename is
// either entirely applied or not at all — no torn value, no half-moved
// dictionary, no parent directory left empty or created alone. SetPartial on
// an existing value is durable but not atomic: a crash during it can leave
// some of the new bytes written. If a write fails with storage_error in the
// middle of a multi-rename sequence and cannot be rolled forward at once,
// the store refuses further writes (storage_error) until it is reopened, so
// that the next New can finish it; reads keep working, and may see the
// write half done until then. A write that fails for lack of space
// (no_space) changes nothing, except SetPartial, which keeps the size the
// value had. Writes to the same directory by other programs while the store
// is open are outside these guarantees.
//
// # Concurrency
//
// A Store is safe for concurrent use. Reads take a shared lock and run in
// parallel; writes take it exclusively and run one at a time. Set, SetFrom
// and Allocate write and fsync their staging file before they take it, so
// they hold it only for their renames and directory fsyncs. Open returns a
// kv.Reader over an open file: POSIX keeps the replaced or removed file's
// bytes alive until the reader is closed, which is the snapshot kv.Reader
// promises. Readers stay usable after the store is closed. The store is
// Linux-only (flock, fstatfs, fallocate).
package loopback
