#include "outcome.h"

#include <stddef.h>

static const char *const texts[OUT_COUNT] = {
    [OUT_OK] = "ok",
    [OUT_CONFIG] = "configuration missing or invalid",
    [OUT_METHOD] = "method must be POST",
    [OUT_SECRET] = "secret missing or wrong",
    [OUT_NO_LENGTH] = "Content-Length required",
    [OUT_TOO_LARGE] = "body larger than max_body",
    [OUT_MEDIA_TYPE] = "content type must be application/x-www-form-urlencoded",
    [OUT_BAD_LENGTH] = "malformed Content-Length",
    [OUT_SHORT_BODY] = "body shorter than Content-Length",
    [OUT_BAD_ESCAPE] = "malformed %-escape",
    [OUT_BAD_BYTES] = "NUL or invalid UTF-8 in a parameter",
    [OUT_EMPTY_KEY] = "empty parameter name",
    [OUT_DUP_KEY] = "duplicate parameter",
    [OUT_CONFLICT] = "parameter differs between query and body",
    [OUT_TOO_MANY] = "too many parameters",
    [OUT_BAD_TYPE] = "type missing or malformed",
    [OUT_VERIFY_PARAMS] = "hook.verify needs hook_id and code",
    [OUT_HOOK_DENIED] = "hook_id not allowed",
    [OUT_UNKNOWN_TYPE] = "unknown event type",
    [OUT_SPOOL] = "event could not be spooled",
};

const char *outcome_text(enum outcome o)
{
	if ((unsigned)o >= OUT_COUNT || texts[o] == NULL)
		return "unknown outcome";
	return texts[o];
}
