/* loom/ws_frame.h - the pure WebSocket layer (RFC 6455, RFC 7692): frame
 * parser, frame-header encoder, masking, incremental UTF-8 validation and the
 * permessage-deflate codec with its extension negotiation.
 *
 * Nothing here does I/O. The parser, the encoder, masking, UTF-8 and the
 * negotiation functions do not allocate; only the deflate codec allocates
 * (zlib state, lazily, see below). All functions work on caller-owned state
 * only, so they may be called from any thread; one object from one thread at
 * a time. The connection layer (loom/ws.h) is built on these.
 *
 * Parsing, per connection:
 *
 *   loom_ws_parser_t p;
 *   loom_ws_parser_init(&p, &(loom_ws_parser_opts_t){.role = LOOM_WS_ROLE_SERVER,
 *                                                     .max_frame = 1 << 20,
 *                                                     .max_message = 1 << 24});
 *   while (len > 0) {
 *       loom_ws_parse_out_t out;
 *       int n = loom_ws_parse(&p, buf, len, &out);
 *       if (n < 0)   // fail: send a close with loom_ws_err_close_code(n)
 *           break;   // and the reason loom_ws_err_str(n)
 *       if (out.flags & LOOM_WS_OUT_HEADER) { ... out.frame is the new frame ... }
 *       if (out.data_len) { ... out.data: unmasked payload bytes ... }
 *       if (out.flags & LOOM_WS_OUT_FRAME_END) { ... frame complete ... }
 *       buf += n, len -= n;
 *   }
 *
 * Each call consumes bytes of at most one frame: its header (whole or the
 * part that is there; the parser keeps up to 14 header bytes in its state, so
 * a header may be split at any byte) and as much of its payload as the buffer
 * holds. A small frame that is in the buffer whole comes out of one call:
 * header, data and end. The payload is unmasked IN PLACE in the caller's
 * buffer (so `buf` is not const) and out.data points into it. A call that
 * returns 0 consumed nothing and needs more bytes (it happens only with
 * len == 0).
 *
 * Validation (each violation is a distinct negative LOOM_WS_ERR_* code, with
 * the close code to send from loom_ws_err_close_code() and a short static
 * reason from loom_ws_err_str()):
 *   - role: a server requires masked frames, a client unmasked ones;
 *   - RSV2/RSV3 are always errors; RSV1 only with LOOM_WS_PARSE_DEFLATE, and
 *     then only on the first frame of a data message (not on continuations,
 *     not on control frames);
 *   - opcodes 3-7 and 0xB-0xF are errors;
 *   - control frames: FIN must be set and the payload is at most 125 bytes;
 *   - fragmentation: a continuation without a message in progress, or a new
 *     text/binary frame while one is in progress, are errors; control frames
 *     may come between fragments;
 *   - close frames: a 1-byte payload, a code not valid on the wire (see
 *     loom_ws_close_code_valid()) and a reason that is not UTF-8 are errors.
 *     The code is reported in out.close_code once its two bytes are in; the
 *     reason is checked incrementally (it may be split across reads);
 *   - lengths: the 64-bit form with the top bit set is an error. Non-minimal
 *     length encodings (126 used for a length < 126, 127 for one < 65536)
 *     violate RFC 6455 section 5.2 but harm no one; they are accepted unless
 *     LOOM_WS_PARSE_STRICT_LENGTH is set, as most implementations do;
 *   - limits, checked as soon as the header is known (before any payload):
 *     max_frame against the frame's length, max_message against the sum of
 *     the message's frames. For a compressed message (RSV1) the wire size is
 *     bounded by max_message + max_message / 64 + 64 (deflate may expand
 *     incompressible data slightly); the inflated size is checked by the
 *     inflater against its own max_message;
 *   - with LOOM_WS_PARSE_UTF8, the payload of uncompressed text messages is
 *     validated across frames and reads, failing on the first invalid byte
 *     (data before it in the same call is not delivered) and on a truncated
 *     sequence at the end of the message. Compressed text must be validated
 *     after inflating, with loom_ws_utf8_*.
 * After an error the parser stays failed: every further call returns
 * LOOM_WS_ERR_STATE.
 *
 * permessage-deflate: see the section near the end of this file for the
 * negotiation and for the codec's memory per connection.
 */
#ifndef LOOM_WS_FRAME_H
#define LOOM_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Constants                                                                 */

/* Opcodes (RFC 6455 section 5.2). */
typedef enum {
    LOOM_WS_OP_CONT = 0x0,
    LOOM_WS_OP_TEXT = 0x1,
    LOOM_WS_OP_BINARY = 0x2,
    LOOM_WS_OP_CLOSE = 0x8,
    LOOM_WS_OP_PING = 0x9,
    LOOM_WS_OP_PONG = 0xA
} loom_ws_opcode_t;

/* True for close, ping and pong (and the reserved control opcodes). */
#define LOOM_WS_OP_IS_CONTROL(op) (((op)&0x8) != 0)

/* Close codes (RFC 6455 section 7.4.1, IANA registry). 1005, 1006 and 1015
 * are never sent on the wire: 1005 is reported when a close frame had no
 * code, 1006 when the connection ended without a close frame. */
#define LOOM_WS_CLOSE_NORMAL          1000
#define LOOM_WS_CLOSE_GOING_AWAY      1001
#define LOOM_WS_CLOSE_PROTOCOL        1002
#define LOOM_WS_CLOSE_UNSUPPORTED     1003
#define LOOM_WS_CLOSE_NO_STATUS       1005
#define LOOM_WS_CLOSE_ABNORMAL        1006
#define LOOM_WS_CLOSE_INVALID_DATA    1007
#define LOOM_WS_CLOSE_POLICY          1008
#define LOOM_WS_CLOSE_TOO_BIG         1009
#define LOOM_WS_CLOSE_MANDATORY_EXT   1010
#define LOOM_WS_CLOSE_INTERNAL        1011
#define LOOM_WS_CLOSE_SERVICE_RESTART 1012
#define LOOM_WS_CLOSE_TRY_AGAIN       1013
#define LOOM_WS_CLOSE_BAD_GATEWAY     1014
#define LOOM_WS_CLOSE_TLS             1015

/* The largest control frame payload, and the largest close reason. */
#define LOOM_WS_MAX_CONTROL      125
#define LOOM_WS_MAX_CLOSE_REASON 123

/* The largest frame header: 2 + 8 (64-bit length) + 4 (masking key). */
#define LOOM_WS_HEADER_MAX 14

/* XX(name, value, close code to send, message) */
#define LOOM_WS_ERR_MAP(XX)                                                                        \
    XX(MASK_REQUIRED, -5101, 1002, "client frame is not masked")                                   \
    XX(MASK_FORBIDDEN, -5102, 1002, "server frame is masked")                                      \
    XX(RSV, -5103, 1002, "reserved bit set without a negotiated extension")                        \
    XX(RSV1_PLACEMENT, -5104, 1002, "RSV1 on a continuation or control frame")                     \
    XX(OPCODE, -5105, 1002, "unknown opcode")                                                      \
    XX(CONTROL_FRAGMENTED, -5106, 1002, "fragmented control frame")                                \
    XX(CONTROL_TOO_BIG, -5107, 1002, "control frame payload over 125 bytes")                       \
    XX(CONT_UNEXPECTED, -5108, 1002, "continuation frame without a message in progress")           \
    XX(DATA_IN_MESSAGE, -5109, 1002, "new data frame inside a fragmented message")                 \
    XX(LENGTH, -5110, 1002, "64-bit payload length with the top bit set")                          \
    XX(LENGTH_NOT_MINIMAL, -5111, 1002, "payload length not minimally encoded")                    \
    XX(CLOSE_PAYLOAD, -5112, 1002, "close payload of one byte")                                    \
    XX(CLOSE_CODE, -5113, 1002, "invalid close code")                                              \
    XX(CLOSE_REASON, -5114, 1007, "close reason is not valid UTF-8")                               \
    XX(FRAME_TOO_BIG, -5115, 1009, "frame exceeds the frame size limit")                           \
    XX(MESSAGE_TOO_BIG, -5116, 1009, "message exceeds the message size limit")                     \
    XX(UTF8, -5117, 1007, "text message is not valid UTF-8")                                       \
    XX(INFLATE, -5118, 1007, "invalid compressed data")                                            \
    XX(EXTENSION, -5119, 1010, "invalid or unexpected Sec-WebSocket-Extensions")                   \
    XX(STATE, -5120, 1011, "used after an error or in the wrong state")

/* WebSocket layer error codes: LOOM_WS_ERR_MASK_REQUIRED, ... All are below
 * -5100, apart from the loom_errno_t and HTTP parser ranges, so they travel
 * in the same int. */
typedef enum loom_ws_err {
#define LOOM__WS_ERR_ENUM(name, val, close, msg) LOOM_WS_ERR_##name = (val),
    LOOM_WS_ERR_MAP(LOOM__WS_ERR_ENUM)
#undef LOOM__WS_ERR_ENUM
        LOOM__WS_ERR_UNUSED = 0
} loom_ws_err_t;

/* Returns a short static reason for a LOOM_WS_ERR_* code (fit for a close
 * frame's reason: ASCII, at most 123 bytes), or "unknown websocket error".
 * Thread-safe. */
LOOM_EXTERN const char *loom_ws_err_str(int code);

/* Returns the close code to send for a LOOM_WS_ERR_* code (1002, 1007, 1009,
 * 1010 or 1011), or 0 when `code` is not one. Thread-safe. */
LOOM_EXTERN int loom_ws_err_close_code(int code);

/* Returns 1 if `code` may appear in a close frame on the wire (RFC 6455
 * section 7.4: 1000-1003, 1007-1014 and 3000-4999), 0 otherwise (below 1000,
 * 1004-1006, 1015-2999, 5000 and above). Thread-safe. */
LOOM_EXTERN int loom_ws_close_code_valid(unsigned code);

/* ------------------------------------------------------------------------ */
/* Frame parser                                                              */

typedef enum { LOOM_WS_ROLE_SERVER = 0, LOOM_WS_ROLE_CLIENT = 1 } loom_ws_role_t;

/* loom_ws_parser_opts_t.flags */
#define LOOM_WS_PARSE_DEFLATE       0x01 /* permessage-deflate negotiated: RSV1 allowed */
#define LOOM_WS_PARSE_UTF8          0x02 /* validate uncompressed text payloads */
#define LOOM_WS_PARSE_STRICT_LENGTH 0x04 /* reject non-minimal length encodings */

typedef struct {
    loom_ws_role_t role;  /* who parses: a server reads masked client frames */
    unsigned flags;       /* LOOM_WS_PARSE_* */
    uint64_t max_frame;   /* largest frame payload; 0 = no limit */
    uint64_t max_message; /* largest message (sum of its frames); 0 = no limit */
} loom_ws_parser_opts_t;

/* A frame header as parsed or to encode. */
typedef struct {
    uint64_t payload_len;
    uint8_t fin;     /* 1 if FIN is set */
    uint8_t rsv;     /* RSV bits: 0x4 = RSV1, 0x2 = RSV2, 0x1 = RSV3 */
    uint8_t opcode;  /* LOOM_WS_OP_* */
    uint8_t masked;  /* 1 if a masking key is present */
    uint8_t mask[4]; /* the masking key (when masked) */
} loom_ws_frame_t;

/* The parser's state. Its fields are private; it is a plain struct so that
 * it can be embedded (64 bytes on 64-bit platforms). */
typedef struct {
    uint64_t remaining;   /* payload bytes left in the current frame */
    uint64_t msg_len;     /* wire bytes of the data message so far */
    uint64_t max_frame;   /* copied from the options (0 = no limit) */
    uint64_t max_message; /* copied from the options (0 = no limit) */
    uint8_t hbuf[LOOM_WS_HEADER_MAX];
    uint8_t hlen;     /* header bytes held in hbuf */
    uint8_t state;    /* private */
    uint8_t flags;    /* LOOM_WS_PARSE_* and the role */
    uint8_t opcode;   /* the current frame's opcode */
    uint8_t fin;      /* the current frame's FIN */
    uint8_t msg;      /* opcode of the data message in progress, or 0 */
    uint8_t msg_rsv1; /* the message in progress is compressed */
    uint8_t mask[4];  /* the current frame's key */
    uint8_t mask_off; /* key offset of the next payload byte */
    uint8_t utf8;     /* UTF-8 state of the text message */
    uint8_t cutf8;    /* UTF-8 state of the close reason */
    uint8_t cpos;     /* close payload bytes seen (capped at 2) */
    uint16_t ccode;   /* close code being assembled */
} loom_ws_parser_t;

/* loom_ws_parse_out_t.flags */
#define LOOM_WS_OUT_HEADER    0x01 /* a frame header completed: out.frame */
#define LOOM_WS_OUT_FRAME_END 0x02 /* the frame's payload is complete */
#define LOOM_WS_OUT_MSG_END   0x04 /* ... and it ended a data message (FIN) */

typedef struct {
    unsigned flags;        /* LOOM_WS_OUT_* */
    loom_ws_frame_t frame; /* the current frame's header (valid once HEADER was
                              reported, repeated on every later call of the frame) */
    uint8_t *data;         /* unmasked payload bytes, inside the caller's buffer */
    size_t data_len;       /* 0 if none in this call */
    uint64_t offset;       /* offset of data within the frame's payload */
    uint16_t close_code;   /* close frames: the code once known, else 0; a
                              complete close frame without a code reports 1005 */
} loom_ws_parse_out_t;

/* Initialises a parser (no allocation; nothing to free). */
LOOM_EXTERN void loom_ws_parser_init(loom_ws_parser_t *p, const loom_ws_parser_opts_t *opts);

/* Changes the parser's flags (LOOM_WS_PARSE_*), for instance to set
 * LOOM_WS_PARSE_DEFLATE once the handshake is known. Takes effect at the next
 * frame header. */
LOOM_EXTERN void loom_ws_parser_set_flags(loom_ws_parser_t *p, unsigned flags);

/* Parses bytes of at most one frame from buf[0..len): see the top of this
 * file. Unmasks the payload in place. Fills *out. Returns the number of bytes
 * consumed (at least 1 when len > 0; 0 when len == 0) or a negative
 * LOOM_WS_ERR_* code. Never reads or writes outside buf[0..len). */
LOOM_EXTERN int loom_ws_parse(loom_ws_parser_t *p, uint8_t *buf, size_t len,
                              loom_ws_parse_out_t *out);

/* Returns 1 if the parser sits between frames (no partial header, no payload
 * pending), 0 otherwise. A data message may still be in progress: see
 * loom_ws_parser_in_message(). */
LOOM_EXTERN int loom_ws_parser_idle(const loom_ws_parser_t *p);

/* Returns the opcode of the fragmented data message in progress (TEXT or
 * BINARY), or 0 if none. */
LOOM_EXTERN int loom_ws_parser_in_message(const loom_ws_parser_t *p);

/* ------------------------------------------------------------------------ */
/* Frame encoder                                                             */

/* Writes the header of frame `f` (fin, rsv, opcode, masked + mask,
 * payload_len) into out, in the minimal length form. Returns its length (2 to
 * 14) or LOOM_EINVAL (opcode > 15, rsv > 7, length >= 2^63, or a control
 * frame that is fragmented or longer than 125 bytes). The payload is not
 * touched: mask it with loom_ws_mask_copy() or loom_ws_mask(). */
LOOM_EXTERN int loom_ws_frame_header(uint8_t out[LOOM_WS_HEADER_MAX], const loom_ws_frame_t *f);

/* Returns the header length loom_ws_frame_header() would write for a payload
 * of `len` bytes, masked or not. */
LOOM_EXTERN size_t loom_ws_frame_header_len(uint64_t len, int masked);

/* Builds a close frame payload: the code (big-endian) then the reason. `code`
 * 0 means no code (and then no reason: the payload is empty). The reason is
 * cut to at most 123 bytes at a UTF-8 character boundary. Returns the payload
 * length (0 to 125) or LOOM_EINVAL if the code is not valid on the wire or the
 * reason is not UTF-8. */
LOOM_EXTERN int loom_ws_close_payload(uint8_t out[LOOM_WS_MAX_CONTROL], unsigned code,
                                      const char *reason, size_t reason_len);

/* Parses a whole close frame payload (unmasked). Sets *code (1005 if the
 * payload is empty) and the reason slice (into p). Returns 0 or
 * LOOM_WS_ERR_CLOSE_PAYLOAD, LOOM_WS_ERR_CLOSE_CODE, LOOM_WS_ERR_CLOSE_REASON or
 * LOOM_WS_ERR_CONTROL_TOO_BIG. */
LOOM_EXTERN int loom_ws_close_parse(const uint8_t *p, size_t n, unsigned *code, const char **reason,
                                    size_t *reason_len);

/* ------------------------------------------------------------------------ */
/* Masking                                                                   */

/* XORs n bytes at p with the 4-byte key, starting at key byte `off` (0-3):
 * byte i is XORed with key[(off + i) % 4]. Returns the key offset for the next
 * byte, (off + n) % 4, so a payload split over several buffers is unmasked by
 * chaining the calls. Word-at-a-time, with SSE2 on x86_64; any alignment. The
 * operation is its own inverse (masking = unmasking). */
LOOM_EXTERN unsigned loom_ws_mask(void *p, size_t n, const uint8_t key[4], unsigned off);

/* As loom_ws_mask() but reads src and writes dst (which may be equal or not
 * overlap at all), leaving the source untouched: for masking a message that
 * the application still owns into an output buffer. Returns (off + n) % 4. */
LOOM_EXTERN unsigned loom_ws_mask_copy(void *dst, const void *src, size_t n, const uint8_t key[4],
                                       unsigned off);

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */

/* An incremental validator: feed a message in any number of pieces. It
 * rejects overlong forms, surrogates (U+D800-U+DFFF), code points above
 * U+10FFFF and stray continuation bytes at the first byte that makes the input
 * invalid (as Autobahn's case 6 expects of a fail-fast endpoint), and a
 * sequence left unfinished at the end. ASCII runs are checked 16 bytes at a
 * time. The state is one byte; zero-initialise it or use _init(). */
typedef struct {
    uint8_t state;
} loom_ws_utf8_t;

/* Resets the validator to "between characters". */
LOOM_EXTERN void loom_ws_utf8_init(loom_ws_utf8_t *u);

/* Validates the next n bytes. Returns 0 if they are a valid continuation of
 * the input so far (possibly ending inside a character), or LOOM_WS_ERR_UTF8;
 * on error *bad (if not NULL) is set to the offset of the offending byte in p,
 * and the validator stays failed. */
LOOM_EXTERN int loom_ws_utf8_feed(loom_ws_utf8_t *u, const void *p, size_t n, size_t *bad);

/* Ends the input: returns 0 if it ended on a character boundary, else
 * LOOM_WS_ERR_UTF8 (a truncated sequence). Resets the validator on success. */
LOOM_EXTERN int loom_ws_utf8_finish(loom_ws_utf8_t *u);

/* One-shot: returns 1 if p[0..n) is complete, valid UTF-8, else 0. */
LOOM_EXTERN int loom_ws_utf8_valid(const void *p, size_t n);

/* ------------------------------------------------------------------------ */
/* permessage-deflate (RFC 7692): negotiation                                */

/* The parameters of one offer or of the agreement. Window bits are 8..15;
 * 0 means the parameter is absent. In an offer, client_max_window_bits may be
 * present without a value: LOOM_WS_DEFLATE_BITS_NOVALUE. */
#define LOOM_WS_DEFLATE_BITS_NOVALUE 1

typedef struct {
    uint8_t server_no_context_takeover; /* 1 if present */
    uint8_t client_no_context_takeover; /* 1 if present */
    uint8_t server_max_window_bits;     /* 0 or 8..15 */
    uint8_t client_max_window_bits;     /* 0, LOOM_WS_DEFLATE_BITS_NOVALUE or 8..15 */
} loom_ws_deflate_params_t;

/* What one side wants; zeroed = the defaults. Used by the server to choose
 * its response and by the client to build its offer. */
typedef struct {
    /* Server: always answer server_no_context_takeover (the server's
     * compressor is reset per message and freed between messages).
     * Client: ask the server for it. */
    uint8_t server_no_context_takeover;
    /* Server: always answer client_no_context_takeover (the server's
     * decompressor is reset and freed between messages).
     * Client: offer it (the client's compressor is reset per message). */
    uint8_t client_no_context_takeover;
    /* The server's compressor window, 8..15 (0 = 15). Server: the largest it
     * will use (answered as server_max_window_bits when below 15 or when the
     * client asked). Client: asked of the server when set. */
    uint8_t server_max_window_bits;
    /* The client's compressor window, 8..15 (0 = 15). Server: answered as
     * client_max_window_bits when the client offered the parameter and this
     * is below 15 or below the client's value. Client: offered with this
     * value when set, else offered without a value (the client accepts any). */
    uint8_t client_max_window_bits;
    /* zlib memLevel of the compressor, 1..9 (0 = 5: zlib's 8 makes output
     * only 1-2% smaller, at the same speed, for 112 KiB more per
     * compressor; docs/WEBSOCKET.md). */
    uint8_t mem_level;
    /* zlib compression level, 1..9 (0 = 1, zlib's fastest, as
     * libwebsockets: 2.5 to 5 times faster than zlib's default 6 on JSON-like
     * text, for output about a third larger; docs/WEBSOCKET.md). */
    uint8_t level;
} loom_ws_deflate_opts_t;

/* The longest response or offer string the functions below write, with its
 * terminating NUL. */
#define LOOM_WS_DEFLATE_HEADER_MAX 160

/* Walks a Sec-WebSocket-Extensions value (a comma-separated list of
 * extensions, each with ;-separated parameters; several header lines may be
 * joined with ", "). From *pos (start at 0) it finds the next
 * permessage-deflate offer whose parameters are all valid (known names, no
 * duplicates, window bits 8..15; client_max_window_bits may lack a value) and
 * stores them in *out. Offers with bad parameters are skipped (RFC 7692
 * section 5: the server declines them), as are other extensions. Returns 1 if
 * an offer was found (*pos is advanced past it), 0 at the end of the list, or
 * LOOM_WS_ERR_EXTENSION if the list is not syntactically valid. Parameter
 * values may be quoted strings. */
LOOM_EXTERN int loom_ws_deflate_offer_next(const char *value, size_t len, size_t *pos,
                                           loom_ws_deflate_params_t *out);

/* Server: picks the first acceptable permessage-deflate offer in the client's
 * Sec-WebSocket-Extensions value, given the server's options. On success
 * writes the agreed parameters to *agreed, the response value (NUL-terminated,
 * for example "permessage-deflate; server_no_context_takeover") to resp
 * (resp_cap >= LOOM_WS_DEFLATE_HEADER_MAX) and returns 1. Returns 0 if no
 * offer is acceptable (answer without the extension) and
 * LOOM_WS_ERR_EXTENSION if the value is malformed (the caller may answer 400
 * or ignore the header). An offer is unacceptable if it limits the server's
 * window to less than the server can do (never: any 8..15 is honoured). */
LOOM_EXTERN int loom_ws_deflate_negotiate(const char *value, size_t len,
                                          const loom_ws_deflate_opts_t *server,
                                          loom_ws_deflate_params_t *agreed, char *resp,
                                          size_t resp_cap);

/* Client: writes the offer for the client's options (NUL-terminated, for
 * example "permessage-deflate; client_max_window_bits") into buf
 * (cap >= LOOM_WS_DEFLATE_HEADER_MAX). Returns its length or LOOM_EINVAL. */
LOOM_EXTERN int loom_ws_deflate_offer(const loom_ws_deflate_opts_t *client, char *buf, size_t cap);

/* Client: checks the server's Sec-WebSocket-Extensions response against what
 * loom_ws_deflate_offer() offered for the same options. Returns 1 with
 * *agreed set when the server accepted permessage-deflate, 0 when the
 * response is empty, and LOOM_WS_ERR_EXTENSION (fail the connection) when it
 * names another extension, more than one, an unknown or duplicate parameter,
 * a bad value, client_max_window_bits without a value or above the offered
 * one (the offer always carries client_max_window_bits, so the server may
 * always answer it), or server_max_window_bits missing or larger when the
 * client asked for one. Parameters the server may add unasked
 * (server_no_context_takeover, client_no_context_takeover,
 * server_max_window_bits) are accepted and are in *agreed; a
 * server_no_context_takeover the client asked for but the server left out
 * is accepted too (the server keeps its context; decoding is the same). A
 * client_no_context_takeover the client offered is in *agreed whether or
 * not the server answered it (RFC 7692 section 7.1.1.2: the offer says the
 * client will not use context takeover). */
LOOM_EXTERN int loom_ws_deflate_check_response(const char *value, size_t len,
                                               const loom_ws_deflate_opts_t *client,
                                               loom_ws_deflate_params_t *agreed);

/* ------------------------------------------------------------------------ */
/* permessage-deflate: the codec                                             */

/* One connection's compressor (for what it sends) and decompressor (for what
 * it receives). Both zlib streams are created lazily on first use. With no
 * context takeover in a direction, that stream leaves the codec at the end of
 * each message, so an idle connection holds no zlib memory for it: it is
 * reset and kept in a small per-thread cache (at most two compressors and two
 * decompressors, the most recently released, for any parameters), from which
 * the next message of any codec with the same parameters on the thread takes
 * it instead of allocating and initialising a new one. With context takeover
 * a stream lives until loom_ws_deflate_free().
 *
 * Memory per stream while it exists (zlib's own figures, plus its z_stream of
 * about 112 bytes):
 *   compressor   2^(wbits + 2) + 2^(mem_level + 9) bytes, plus ~6 KiB:
 *                wbits 15, mem_level 5 (the defaults) = 150 KiB;
 *                wbits 15, mem_level 8 (zlib's defaults) = 262 KiB;
 *                wbits 9,  mem_level 1 = 9 KiB;
 *   decompressor 2^wbits + ~7 KiB: wbits 15 = 39 KiB, wbits 8 = 7.3 KiB.
 * The struct itself is 40 bytes.
 *
 * Window bits 8: zlib refuses windowBits 8 for raw deflate compression, so
 * the compressor uses 9 when 8 is agreed (as Node's ws and others do). This
 * is safe: zlib never emits a distance larger than window - 262 bytes, which
 * for 9 bits is 250, within what a 256-byte window can resolve. */
typedef struct {
    void *tx;             /* compressor z_stream, or NULL */
    void *rx;             /* decompressor z_stream, or NULL */
    uint64_t max_message; /* inflated size limit per message; 0 = none */
    /* Inflated bytes of the current message, counted against max_message.
     * A caller that bounds each frame rather than each message (loom_ws with
     * on_fragment: max_frame) sets it to 0 before each frame. */
    uint64_t rx_total;
    uint8_t tx_bits, rx_bits;   /* window bits in each direction */
    uint8_t tx_reset, rx_reset; /* no context takeover in each direction */
    uint8_t level, mem_level;
    uint8_t rx_tail; /* bytes of the 00 00 ff ff tail fed */
    uint8_t tx_open; /* a compressed message is in progress */
} loom_ws_deflate_t;

/* Sets up the codec for one connection from the agreed parameters: `role`
 * says which side this is (a server compresses with the server_* parameters
 * and decompresses with the client_* ones). `opts` (may be NULL) gives level
 * and mem_level; `max_message` limits the inflated size of one message (0 =
 * no limit; see rx_total for a bound per frame). Allocates nothing. Returns 0 or LOOM_EINVAL. */
LOOM_EXTERN int loom_ws_deflate_init(loom_ws_deflate_t *d, loom_ws_role_t role,
                                     const loom_ws_deflate_params_t *agreed,
                                     const loom_ws_deflate_opts_t *opts, uint64_t max_message);

/* Frees both zlib streams (the codec may be used again: they are recreated
 * lazily). Safe on a zeroed or already freed codec. */
LOOM_EXTERN void loom_ws_deflate_free(loom_ws_deflate_t *d);

/* Returns the most bytes loom_ws_deflate_compress() can write for `in_len`
 * input bytes (a safe upper bound for any level and window). */
LOOM_EXTERN size_t loom_ws_deflate_bound(size_t in_len);

/* Compresses a piece of an outgoing message into out (cap >=
 * loom_ws_deflate_bound(in_len)). `last` = 1 on the message's final piece:
 * then the trailing 00 00 ff ff of the sync flush is stripped (RFC 7692
 * section 7.2.1) and, without context takeover, the compressor leaves
 * the codec (for the thread's cache, see above).
 * Pieces before the last end in a sync flush, so each can go out as a frame
 * at once. A whole message is one call with last = 1. Sets *out_len. Returns 0,
 * LOOM_ENOMEM, LOOM_ENOBUFS if cap is below the bound, or LOOM_EMSGSIZE for a
 * piece over 2 GiB (compress such a message in pieces). */
LOOM_EXTERN int loom_ws_deflate_compress(loom_ws_deflate_t *d, const void *in, size_t in_len,
                                         int last, void *out, size_t cap, size_t *out_len);

/* Decompresses a received message's payload, streaming into caller-provided
 * output chunks. *in / *in_len are the compressed bytes not yet consumed (the
 * call advances them); `last` = 1 when they end the message (the frame had
 * FIN): the 00 00 ff ff tail is then appended internally. out[0..*out_len) is
 * the space offered; on return *out_len is the number of bytes written.
 * Returns:
 *   1  the message is complete (all input and the tail consumed, all output
 *      written); the inflater is ready for the next message (without
 *      context takeover it left the codec for the thread's cache);
 *   0  call again: with more output space if the input is not used up (or
 *      `last` is set), else with the next frame's payload;
 *   LOOM_WS_ERR_MESSAGE_TOO_BIG as soon as the message's inflated size would
 *      exceed max_message: the output offered is capped so that no more than
 *      max_message + 1 bytes are ever produced, so a bomb stops before memory
 *      is spent;
 *   LOOM_WS_ERR_INFLATE on corrupt data, LOOM_ENOMEM.
 * After an error call loom_ws_deflate_free() (the connection is failing). */
LOOM_EXTERN int loom_ws_inflate(loom_ws_deflate_t *d, const uint8_t **in, size_t *in_len, int last,
                                uint8_t *out, size_t *out_len);

/* Returns the bytes of zlib memory the codec holds now (an estimate from the
 * formulas above), for stats. */
LOOM_EXTERN size_t loom_ws_deflate_memory(const loom_ws_deflate_t *d);

/* Frees the calling thread's cache of idle zlib streams (see
 * loom_ws_deflate_t). It is freed by itself when the thread exits; this is
 * for a thread that stays but stops compressing. */
LOOM_EXTERN void loom_ws_deflate_cache_flush(void);

#ifdef __cplusplus
}
#endif
#endif
