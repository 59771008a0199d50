/* dlist.h - an intrusive doubly linked list: the node lives in the item
 * (struct dlist_node link), so adding and removing allocate nothing and
 * removal needs only the item.  Not thread-safe: the owner locks.
 *
 *   struct item { struct dlist_node link; ... };
 *   struct dlist items = { 0 };
 *   dlist_push(&items, &it->link);
 *   DLIST_FOR_EACH(struct item, x, &items, link) use(x);
 *   dlist_remove(&items, &it->link);
 */
#ifndef SMK_UTIL_DLIST_H
#define SMK_UTIL_DLIST_H

#include <stddef.h>

struct dlist_node {
	struct dlist_node *prev, *next;
};

struct dlist {
	struct dlist_node *first;
};

/* Add n at the front. */
static inline void dlist_push(struct dlist *l, struct dlist_node *n)
{
	n->prev = NULL;
	n->next = l->first;
	if (l->first)
		l->first->prev = n;
	l->first = n;
}

/* Take n (in l) out of l. */
static inline void dlist_remove(struct dlist *l, struct dlist_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->first = n->next;
	if (n->next)
		n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

/* The item whose `member` node n is. */
#define DLIST_ITEM(n, type, member) ((type *)(void *)((char *)(n) - offsetof(type, member)))

/* Each item of list l in turn as `type *var`; the body must not remove
 * the current item (it may mark it for removal later). */
#define DLIST_FOR_EACH(type, var, l, member)                                                        \
	for (type *var = (l)->first ? DLIST_ITEM((l)->first, type, member) : NULL; var;             \
	     var = var->member.next ? DLIST_ITEM(var->member.next, type, member) : NULL)

#endif
