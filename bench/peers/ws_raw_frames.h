/* ws_raw_frames.h: the frame loop shared by the raw limit probes (ws_raw.c on
 * epoll, ws_raw_uring.c on io_uring). Included by each after it defines
 * MAX_MSG, send_msg(fd, opcode, payload, len) and on_message(fd, opcode,
 * payload, len), which differ between the two (a write() or a queued SEND). */
#ifndef LOOM_BENCH_WS_RAW_FRAMES_H
#define LOOM_BENCH_WS_RAW_FRAMES_H

/* Parses and handles complete frames; returns bytes consumed, -1 to close. */
static long frames(int fd, uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ws_hdr_t h;
        size_t hl = ws_frame_parse(buf + off, len - off, &h);
        if (hl == 0)
            break;
        if (!h.masked || h.len > MAX_MSG || !h.fin || h.rsv1)
            return -1;
        if (len - off - hl < h.len)
            break;
        uint8_t *p = buf + off + hl;
        ws_mask(p, h.len, h.mask, 0);
        off += hl + h.len;
        switch (h.opcode) {
        case 1:
        case 2:
            if (on_message(fd, h.opcode, p, (size_t)h.len) != 0)
                return -1;
            break;
        case 8:
            send_msg(fd, 8, p, h.len >= 2 ? 2 : 0);
            return -1;
        case 9:
            if (send_msg(fd, 10, p, (size_t)h.len) != 0)
                return -1;
            break;
        case 10:
            break;
        default:
            return -1;
        }
    }
    return (long)off;
}

#endif
