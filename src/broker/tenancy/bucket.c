/* Token buckets; see bucket.h. */
#include "broker/tenancy/bucket.h"

#include <math.h>

static void refill(struct token_bucket *b, int64_t now_ms)
{
        if (now_ms > b->last_ms) {
                b->tokens += b->rate * (double)(now_ms - b->last_ms) / 1000.0;
                if (b->tokens > b->burst)
                        b->tokens = b->burst;
        }
        b->last_ms = now_ms > b->last_ms ? now_ms : b->last_ms;
}

void bucket_configure(struct token_bucket *b, double rate, double burst, int64_t now_ms)
{
        bool was_unlimited = b->rate < 0;
        if (!was_unlimited)
                refill(b, now_ms);
        b->rate = rate;
        b->burst = burst < 1 ? 1 : burst;
        b->last_ms = now_ms;
        if (rate < 0)
                b->tokens = 0;
        else if (was_unlimited || b->tokens > b->burst)
                b->tokens = b->burst;
}

void bucket_take(struct token_bucket *b, double amount, int64_t now_ms)
{
        if (b->rate < 0)
                return;
        refill(b, now_ms);
        b->tokens -= amount;
}

double bucket_tokens(struct token_bucket *b, int64_t now_ms)
{
        if (b->rate < 0)
                return INFINITY;
        refill(b, now_ms);
        return b->tokens;
}

int64_t bucket_delay_ms(struct token_bucket *b, int64_t now_ms)
{
        if (b->rate < 0)
                return 0;
        refill(b, now_ms);
        if (b->tokens >= 0)
                return 0;
        if (b->rate == 0)
                return INT32_MAX; /* a zero quota: held back until the quota changes */
        return (int64_t)ceil(-b->tokens * 1000.0 / b->rate);
}
