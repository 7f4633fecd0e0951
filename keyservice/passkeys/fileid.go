package passkeys

import (
	"os"
	"time"
)

// fileID is what a cheap stat tells of the registry file: which file it is
// (device and inode) and what was last done to it (size, modification and
// change times to the nanosecond). The registry re-reads the file only
// when its fileID differs from the one of the file whose entries are in
// force, and only if that one was trusted.
//
// Why a changed file always shows a different fileID:
//   - Every writer replaces the file atomically (change, through
//     atomicfile: a new file renamed over the old one), so a change is a
//     new inode. The registry holds the file it loaded open (Registry.held),
//     so that inode cannot be freed and handed to the new file: the inode
//     number differs, whatever the times and the size.
//   - A file edited in place (no writer of Blindgate does that; an admin
//     with an editor might) keeps its inode, but a write sets the
//     modification and change times to the clock. Two writes in one tick
//     of the file system's clock (as coarse as 2 s on some) with the same
//     size would look alike, so a file loaded within racyWindow of its own
//     times is not trusted (git's "racy" rule): until the clock has moved
//     past that window, every check re-reads the file and compares its
//     bytes, as if there were no cache. A later write then gets later times.
//   - A missing file is a fileID of its own: its appearance is a change.
//
// Where the file system gives no inode or change time (not Linux), no
// fileID is trusted and every check re-reads the file.
type fileID struct {
	missing  bool
	dev, ino uint64
	size     int64
	mtime    int64 // ns
	ctime    int64 // ns
	trusted  bool  // stable: a later change would show
	known    bool  // dev, ino and ctime are known
}

// racyWindow is how long after its last change a file's times may still
// be shared by a further change: the coarsest timestamp granularity of a
// file system the registry may live on (FAT's 2 s; Linux's own are a
// clock tick).
const racyWindow = 2 * time.Second

// same reports whether cur, from a stat now, is the file id describes.
func (id *fileID) same(cur fileID) bool {
	if id.missing || cur.missing {
		return id.missing == cur.missing
	}
	return cur.known && id.dev == cur.dev && id.ino == cur.ino && id.size == cur.size &&
		id.mtime == cur.mtime && id.ctime == cur.ctime
}

// statID is the fileID of fi, trusted when it was loaded (now) more than
// racyWindow after the file's last change.
func statID(fi os.FileInfo, now time.Time) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	id.dev, id.ino, id.ctime, id.known = sysID(fi)
	last := time.Unix(0, max(id.mtime, id.ctime))
	id.trusted = id.known && now.Sub(last) >= racyWindow
	return id
}

// pathID is the fileID of the file at path now (os.Stat: no open, no
// read), for comparison only.
func pathID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return fileID{missing: true}, nil
	}
	if err != nil {
		return fileID{}, err
	}
	return statID(fi, time.Time{}), nil
}
