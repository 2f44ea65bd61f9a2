#include "follow.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "../lib/layout.h"
#include "../lib/log.h"

/* What a receiver does to a spool file, and the folder going away. */
#define WATCH_MASK                                                             \
	(IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO |                \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Reads what inotify has.  Returns 1 when a selected {type}.jsonl changed
 * (or events were lost: look anyway), 0 when nothing relevant, -1 when the
 * spool directory went away or reading failed.
 */
static int changes(struct engine *e, int in)
{
	char buf[16384]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	int relevant = 0;
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return relevant;
		if (n <= 0) {
			log_error("drain --follow: reading inotify: %s",
				  n < 0 ? strerror(errno) : "end of file");
			return -1;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;
			char type[EVENT_TYPE_MAX + 1];
			p += sizeof *ev + ev->len;
			if (ev->mask &
			    (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
				log_error("drain --follow: %s was removed or "
					  "moved",
					  e->dir);
				return -1;
			}
			if (ev->mask & IN_Q_OVERFLOW)
				relevant = 1;
			else if (ev->len > 0 &&
				 layout_parse(ev->name, type) ==
				     LAYOUT_PENDING &&
				 engine_selected(&e->opt, type))
				relevant = 1;
		}
	}
}

/*
 * One pass; new_only for the passes woken by inotify.  *paused is set
 * when a rate limit stopped it: no pass until the next full one, so that
 * arrivals do not hammer the API meanwhile.
 */
static int pass(struct engine *e, int new_only, int *paused)
{
	e->opt.new_only = new_only;
	*paused = 0;
	if (engine_pass(e) != 0 && e->stats.broken)
		return -1;
	if (e->stats.stopped) {
		log_warn(
		    "drain --follow: stopped by a rate limit; trying again "
		    "at the next full pass");
		e->stats.stopped = 0;
		*paused = 1;
	}
	return 0;
}

int follow_run(struct engine *e, const volatile sig_atomic_t *stop,
	       unsigned rescan_s)
{
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (in < 0 || inotify_add_watch(in, e->dir, WATCH_MASK) < 0) {
		log_error("drain --follow: inotify on %s: %s", e->dir,
			  strerror(errno));
		if (in >= 0)
			close(in);
		return -1;
	}
	log_info("drain --follow: following %s (full pass every %u s)", e->dir,
		 rescan_s);
	int paused;
	int rc = pass(e, 0, &paused);
	long long next_full = now_ms() + (long long)rescan_s * 1000;
	while (rc == 0 && !*stop && !engine_done(e)) {
		long long wait = next_full - now_ms();
		struct pollfd pfd = {in, POLLIN, 0};
		int ready =
		    wait > 0 ? poll(&pfd, 1, wait > 60000 ? 60000 : (int)wait)
			     : 0;
		if (ready < 0 && errno != EINTR) {
			log_error("drain --follow: poll: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (*stop)
			break;
		int woke = ready > 0 ? changes(e, in) : 0;
		if (woke < 0) {
			rc = -1;
		} else if (now_ms() >= next_full) {
			rc = pass(e, 0, &paused);
			next_full = now_ms() + (long long)rescan_s * 1000;
		} else if (woke > 0 && !paused) {
			rc = pass(e, 1, &paused);
		}
	}
	close(in);
	log_info("drain --follow: stopped");
	return rc;
}
