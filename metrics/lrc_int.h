/*
 * lrc_int.h — internals of the one-sample kernels that the tests reach:
 * the choice between exact ways of computing the same curve. Every choice
 * gives the same hits; the tests force each one and compare them with a
 * brute-force simulation.
 */
#ifndef MET_LRC_INT_H
#define MET_LRC_INT_H

#include "metrics/lrc.h"

/* LRU: the stack distance by counting last-use times over all experts (a
 * few vector compares when E is small) or by a Fenwick tree over access
 * positions (any E). AUTO: counting for E <= MET_LRC_LRU_COUNT_MAX_E. */
#define MET_LRC_LRU_COUNT_MAX_E 256
typedef enum met_lrc_lru { MET_LRC_LRU_AUTO = 0, MET_LRC_LRU_COUNT, MET_LRC_LRU_FENWICK } met_lrc_lru;

/* LFU, Belady, FSF: the Mattson walk finds its records by a branchy scan,
 * by branch-free masks after the first record, or by the record density
 * seen so far in the sample (AUTO). */
typedef enum met_lrc_walk { MET_LRC_WALK_AUTO = 0, MET_LRC_WALK_SCAN, MET_LRC_WALK_MASK } met_lrc_walk;

/* Forces the methods of later met_curve_sample calls on ws. COUNT needs
 * E <= MET_LRC_LRU_COUNT_MAX_E and falls back to the Fenwick tree above. */
void met_lrc_ws_force(met_lrc_ws *ws, met_lrc_lru lru, met_lrc_walk walk);

#endif
