#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"

/* Supplementary groups of the owner that are looked at. */
#define OWNER_GROUPS_MAX 64

/* The spool's owner: who must be able to use everything in it. */
struct owner {
	uid_t uid;
	gid_t gid;
	gid_t groups[OWNER_GROUPS_MAX];
	int ngroups;
	char name[64];
	char group[64];
};

struct audit {
	const struct owner *o;
	audit_report_fn report;
	void *ctx;
	int found;
};

static void finding(struct audit *a, const char *problem, const char *fix)
{
	a->report(a->ctx, problem, fix);
	a->found++;
}

static void load_owner(struct owner *o, const struct stat *st)
{
	const struct passwd *pw = getpwuid(st->st_uid);
	const struct group *gr = getgrgid(st->st_gid);
	o->uid = st->st_uid;
	o->gid = st->st_gid;
	o->ngroups = OWNER_GROUPS_MAX;
	if (pw != NULL) {
		snprintf(o->name, sizeof o->name, "%s", pw->pw_name);
		if (getgrouplist(pw->pw_name, st->st_gid, o->groups,
				 &o->ngroups) < 0)
			o->ngroups = 0;
	} else {
		snprintf(o->name, sizeof o->name, "%ld", (long)st->st_uid);
		o->ngroups = 0;
	}
	if (gr != NULL)
		snprintf(o->group, sizeof o->group, "%s", gr->gr_name);
	else
		snprintf(o->group, sizeof o->group, "%ld", (long)st->st_gid);
}

/* 1 when the owner has every permission in want (r=4, w=2, x=1). */
static int owner_can(const struct owner *o, const struct stat *st,
		     unsigned want)
{
	unsigned bits;
	if (st->st_uid == o->uid) {
		bits = (st->st_mode >> 6) & 7;
	} else {
		int member = st->st_gid == o->gid;
		for (int i = 0; i < o->ngroups && !member; i++)
			member = o->groups[i] == st->st_gid;
		bits = member ? (st->st_mode >> 3) & 7 : st->st_mode & 7;
	}
	return (bits & want) == want;
}

/* The entry name in dirfd (path for messages), as what it should be. */
static void check_entry(struct audit *a, int dirfd, const char *path,
			const char *name, int want_dir)
{
	char problem[1024];
	char fix[1024];
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return; /* absent: made when needed */
	int ok_kind = want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
	if (!ok_kind) {
		snprintf(problem, sizeof problem, "%s/%s %s", path, name,
			 S_ISLNK(st.st_mode) ? "is a symbolic link"
			 : want_dir	     ? "is not a directory"
					     : "is not a regular file");
		snprintf(fix, sizeof fix,
			 "move %s/%s out of the spool after checking what it "
			 "is",
			 path, name);
		finding(a, problem, fix);
		return;
	}
	unsigned want = want_dir ? 7 : 6;
	if (owner_can(a->o, &st, want))
		return;
	snprintf(problem, sizeof problem,
		 "%s/%s (owner uid %ld, mode %04o) cannot be %s by %s, the "
		 "spool's owner",
		 path, name, (long)st.st_uid, (unsigned)(st.st_mode & 07777),
		 want_dir ? "used" : "read and written", a->o->name);
	if (st.st_uid != a->o->uid)
		snprintf(fix, sizeof fix, "chown %s:%s %s/%s", a->o->name,
			 a->o->group, path, name);
	else
		snprintf(fix, sizeof fix, "chmod u+%s %s/%s",
			 want_dir ? "rwx" : "rw", path, name);
	finding(a, problem, fix);
}

/*
 * A name like a spool file's with something after it ({type}.jsonl.1,
 * {type}.jsonl-20261127.gz): a copy or a rotation that drain never reads.
 * The length of its type (the longest that is one: a type may hold
 * ".jsonl"), or 0.
 */
static size_t stray_type(const char *name)
{
	size_t found = 0;
	if (name[0] == '.')
		return 0;
	for (const char *p = strstr(name, LAYOUT_SUFFIX); p != NULL;
	     p = strstr(p + 1, LAYOUT_SUFFIX)) {
		char after = p[sizeof LAYOUT_SUFFIX - 1];
		size_t n = (size_t)(p - name);
		if ((after == '.' || after == '-') &&
		    event_type_wellformed(name, n))
			found = n;
	}
	return found;
}

/*
 * The finding, with the mv that makes the file a work file.  Its claim
 * stamp is the file's mtime in microseconds, the form drain's own claims
 * take: work files are drained oldest stamp first, so rotations (.2
 * older than .1) and earlier claims keep their order.
 */
static void report_stray(struct audit *a, int dirfd, const char *path,
			 const char *name, size_t tlen)
{
	char problem[1024];
	char fix[1024];
	struct stat st;
	long long us = 1;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		us = (long long)st.st_mtim.tv_sec * 1000000 +
		     st.st_mtim.tv_nsec / 1000;
	snprintf(problem, sizeof problem,
		 "%s/%s is not a spool file: drain never reads it (spool "
		 "files must not be rotated, copied or truncated)",
		 path, name);
	snprintf(fix, sizeof fix,
		 "mv %s/%s %s/%.*s" LAYOUT_CLAIM_MARK "%016lld (uncompressed; "
		 "its mtime in microseconds): drain then takes it",
		 path, name, path, (int)tlen, name, us);
	finding(a, problem, fix);
}

/* Every spool name in one folder; top: the spool directory itself. */
static void check_files(struct audit *a, int dirfd, const char *path, int top)
{
	DIR *d = layout_read_dir(dirfd);
	struct dirent *e;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char type[EVENT_TYPE_MAX + 1];
		const char *st = strstr(e->d_name, LAYOUT_CLAIM_MARK);
		int progress = st != NULL && strstr(st, LAYOUT_STATE_SUFFIX);
		size_t stray;
		if (layout_parse(e->d_name, type) != LAYOUT_OTHER || progress)
			check_entry(a, dirfd, path, e->d_name, 0);
		else if (top && (stray = stray_type(e->d_name)) > 0)
			report_stray(a, dirfd, path, e->d_name, stray);
	}
	closedir(d);
}

static void check_sub(struct audit *a, int dirfd, const char *path,
		      const char *name)
{
	char sub[4096];
	check_entry(a, dirfd, path, name, 1);
	int fd = layout_open_dir(dirfd, name, 0, 0);
	if (fd < 0)
		return;
	snprintf(sub, sizeof sub, "%s/%s", path, name);
	check_files(a, fd, sub, 0);
	close(fd);
}

int audit_spool(const char *dir, mode_t file_mode, uid_t runner,
		audit_report_fn report, void *ctx)
{
	char problem[1024];
	char fix[1024];
	struct stat st;
	struct owner o;
	struct audit a = {&o, report, ctx, 0};
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || fstat(dirfd, &st) != 0) {
		if (dirfd >= 0)
			close(dirfd);
		return -1;
	}
	load_owner(&o, &st);
	if ((st.st_mode & S_IWOTH) != 0 &&
	    ((st.st_mode & S_ISVTX) == 0 || st.st_uid != runner)) {
		snprintf(problem, sizeof problem,
			 "spool directory %s (mode %04o) is writable by every "
			 "user",
			 dir, (unsigned)(st.st_mode & 07777));
		snprintf(fix, sizeof fix, "chmod o-w %s", dir);
		finding(&a, problem, fix);
	}
	if (!owner_can(&o, &st, 7)) {
		snprintf(problem, sizeof problem,
			 "spool directory %s (mode %04o) cannot be used by its "
			 "owner %s",
			 dir, (unsigned)(st.st_mode & 07777), o.name);
		snprintf(fix, sizeof fix, "chmod u+rwx %s", dir);
		finding(&a, problem, fix);
	}
	if ((file_mode & 022) != 0) {
		snprintf(problem, sizeof problem,
			 "[spool] file_mode %04o lets %s write spool files",
			 (unsigned)file_mode,
			 (file_mode & 002) != 0 ? "every user" : "the group");
		snprintf(fix, sizeof fix, "set file_mode = %04o in the config",
			 (unsigned)(file_mode & ~022u));
		finding(&a, problem, fix);
	}
	check_sub(&a, dirfd, dir, LAYOUT_FAILED_DIR);
	check_sub(&a, dirfd, dir, LAYOUT_BAD_DIR);
	check_entry(&a, dirfd, dir, LAYOUT_DRAIN_LOCK, 0);
	check_entry(&a, dirfd, dir, LAYOUT_TOKEN_CACHE, 0);
	check_files(&a, dirfd, dir, 1);
	close(dirfd);
	return a.found;
}
