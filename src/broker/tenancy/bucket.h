/* A token bucket measured in milliseconds of wall-clock time: <rate> tokens a second,
 * at most <burst> banked. Taking more than is there leaves a debt (negative tokens),
 * and bucket_delay_ms() says how long until the debt is paid: the Kafka way of
 * throttling, where a request is served and the client is then held back. Pure: time
 * is an argument. */
#ifndef STRATUS_BROKER_TENANCY_BUCKET_H
#define STRATUS_BROKER_TENANCY_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

#define BUCKET_UNLIMITED { .rate = -1, .burst = 0, .tokens = 0, .last_ms = 0 }

struct token_bucket {
        double rate;    /* tokens a second; negative: unlimited */
        double burst;   /* most tokens banked */
        double tokens;  /* may be negative (debt) */
        int64_t last_ms;
};

/* Sets the rate and burst (<rate> negative: unlimited). A bucket starts unlimited
 * (BUCKET_UNLIMITED). One that was unlimited starts full; a
 * changed one keeps its tokens, capped at the new burst. */
void bucket_configure(struct token_bucket *b, double rate, double burst, int64_t now_ms);
static inline bool bucket_unlimited(const struct token_bucket *b)
{
        return b->rate < 0;
}
/* Takes <amount> tokens (may leave a debt). */
void bucket_take(struct token_bucket *b, double amount, int64_t now_ms);
/* Tokens there now (negative: a debt). */
double bucket_tokens(struct token_bucket *b, int64_t now_ms);
/* Milliseconds until the tokens are back to zero; 0 when there is no debt. */
int64_t bucket_delay_ms(struct token_bucket *b, int64_t now_ms);

#endif
